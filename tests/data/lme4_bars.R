# Writes lme4_bars.json and bars.csv: how lme4 1.1-31 expands random-effects terms (findbars) and the
# structure lFormula builds from them on bars.csv (reTrms: Gp, cnms, flist with its levels and assign),
# for the formulas of issue 16 item 1: several terms, nested a/b, interactions a:b, ||, 0 + x, factor slopes.
# Rscript lme4_bars.R   (run from tests/data/; R 4.x with lme4 and jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
set.seed(16)
schools <- c("b", "a", "d", "c")
data <- expand.grid(rep = 1:4, class = c(1, 2, 10), school = schools, stringsAsFactors = FALSE)
data <- data[!(data$school == "d" & data$class == 10), ]           # a combination that does not occur
data$sex <- ifelse(runif(nrow(data)) < 0.5, "m", "f")
data$x <- round(rnorm(nrow(data)), 3)
data$y <- round(rnorm(nrow(data)) + data$x, 3)
data <- data[sample(nrow(data)), c("y", "x", "sex", "school", "class")]
write.csv(data, "bars.csv", row.names = FALSE)
formulas <- c(
  "y ~ x + (1 | school) + (1 | class)",
  "y ~ x + (1 | school/class)",
  "y ~ x + (1 | school) + (1 | school:class)",
  "y ~ x + (1 | class:school)",
  "y ~ x + (1 + x || school)",
  "y ~ x + (x || school)",
  "y ~ x + (0 + x | school) + (1 | class)",
  "y ~ x + (1 | school) + (0 + x | school)",
  "y ~ x + (1 + sex | school)",
  "y ~ x + (0 + sex | school)",
  "y ~ x + (1 + sex || school)",
  "y ~ x + (x | school/class)",
  "y ~ x + (1 | school/class/sex)",
  "y ~ x + (1 + x | class) + (1 | school)",
  "y ~ (1 | class) + x + (1 | school:sex) + (1 | school)"
)
read <- read.csv("bars.csv")
describe <- function(f) {
  rt <- lFormula(as.formula(f), data = read)$reTrms
  list(formula = f, bars = vapply(findbars(as.formula(f)), deparse1, ""),
       Gp = rt$Gp, cnms = unname(rt$cnms), cnms_groups = names(rt$cnms),
       flist = names(rt$flist), assign = attr(rt$flist, "assign"),
       levels = unname(lapply(rt$flist, levels)))
}
out <- list(cases = lapply(formulas, describe),
            versions = list(lme4 = as.character(packageVersion("lme4")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = FALSE, pretty = TRUE), "lme4_bars.json")
