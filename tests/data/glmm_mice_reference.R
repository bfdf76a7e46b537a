# Writes glmm_mice.json and glmm_mice_imp_<k>.csv: mice::pool of glmer fits (lme4 1.1-31, mice 3.15) on
# binary_slope.csv with 20% of x made missing completely at random, imputed by mice (pmm, m = 5; the grouping
# column g carried, not a predictor). Run from tests/data/ after glmm_reference.R:
#   Rscript glmm_mice_reference.R   (R 4.x with lme4, mice, broom.mixed, jsonlite)
suppressMessages({library(lme4); library(mice); library(broom.mixed); library(jsonlite)})
data <- read.csv("binary_slope.csv")
set.seed(20261202)
data$x[runif(nrow(data)) < 0.2] <- NA
predictors <- make.predictorMatrix(data)
predictors[, "g"] <- 0
imp <- mice(data, m = 5, predictorMatrix = predictors, method = "pmm", seed = 20261202, printFlag = FALSE)
for (k in 1:5) write.csv(complete(imp, k), sprintf("glmm_mice_imp_%d.csv", k), row.names = FALSE)
formula <- y ~ x + z + (1 + x | g)
fits <- with(imp, glmer(y ~ x + z + (1 + x | g), family = binomial))
pooled <- pool(fits)
tests <- summary(pooled, conf.int = TRUE)
ratios <- summary(pooled, conf.int = TRUE, exponentiate = TRUE)
out <- list(formula = deparse(formula), m = pooled$m,
            pooled = as.list(pooled$pooled[, c("term", "estimate", "ubar", "b", "t", "dfcom", "df", "riv",
                                               "lambda", "fmi")]),
            std_error = tests$std.error, statistic = tests$statistic, p_value = tests$p.value,
            conf_low = tests[["2.5 %"]], conf_high = tests[["97.5 %"]],
            ratio = ratios$estimate, ratio_low = ratios[["2.5 %"]], ratio_high = ratios[["97.5 %"]],
            per_fit = lapply(fits$analyses, function(f) list(fixef = unname(fixef(f)),
                                                             se = unname(sqrt(diag(as.matrix(vcov(f))))),
                                                             deviance = -2 * as.numeric(logLik(f)),
                                                             messages = as.list(unlist(f@optinfo$conv$lme4$messages)))),
            versions = list(lme4 = as.character(packageVersion("lme4")), mice = as.character(packageVersion("mice")),
                            R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "glmm_mice.json")
