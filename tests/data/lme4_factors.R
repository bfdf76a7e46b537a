# Writes lme4_factors.json, penicillin.csv and three_level.csv: lme4 1.1-31's fits of models with several
# grouping factors (issue 16): lme4::Penicillin (plate and sample crossed), and a simulated three-level data
# set (students in classes in schools; class ids repeat across schools, so only 'school/class' or
# 'school:class' tells them apart) with nested intercepts, a school slope beside nested classes, and '||'.
# Rscript lme4_factors.R   (run from tests/data/; R 4.x with lme4 and jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
write.csv(Penicillin, "penicillin.csv", row.names = FALSE)
set.seed(1616)
schools <- 25
classes <- 4
three <- do.call(rbind, lapply(seq_len(schools), function(s) {
  do.call(rbind, lapply(seq_len(classes), function(k) {
    n <- sample(6:14, 1)
    data.frame(school = sprintf("s%02d", s), class = k, x = round(rnorm(n), 3))
  }))
}))
school_w <- round(rnorm(schools), 3)
school_u <- rnorm(schools, sd = 1.2)
school_slope <- rnorm(schools, sd = 0.4)
class_u <- rnorm(schools * classes, sd = 0.8)
s <- as.integer(factor(three$school))
k <- (s - 1) * classes + three$class
three$w <- school_w[s]
three$y <- round(10 + 2 * three$x + 1.5 * three$w + school_u[s] + school_slope[s] * three$x + class_u[k] +
                   rnorm(nrow(three), sd = 2), 3)
write.csv(three, "three_level.csv", row.names = FALSE)

describe <- function(f, file, reml = TRUE) {
  fit <- lmer(as.formula(f), data = read.csv(file), REML = reml)
  vc <- as.data.frame(VarCorr(fit))
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  list(formula = f, data = file, reml = reml, singular = isSingular(fit),
       fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor),
       sigma = sigma(fit), reml_criterion = if (reml) REMLcrit(fit) else NA,
       deviance = if (reml) NA else deviance(fit), loglik = as.numeric(logLik(fit)),
       aic = AIC(fit), bic = BIC(fit), npar = attr(logLik(fit), "df"), ngrps = as.list(ngrps(fit)),
       ranef = list(grpvar = as.character(re$grpvar), term = as.character(re$term), grp = as.character(re$grp),
                    condval = re$condval, condsd = re$condsd),
       theta = unname(getME(fit, "theta")))
}
out <- list(
  penicillin = describe("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin.csv"),
  penicillin_ml = describe("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin.csv", reml = FALSE),
  nested = describe("y ~ x + w + (1 | school/class)", "three_level.csv"),
  nested_slope = describe("y ~ x + w + (1 + x | school) + (1 | school:class)", "three_level.csv"),
  uncorrelated = describe("y ~ x + w + (1 + x || school) + (1 | class:school)", "three_level.csv"),
  versions = list(lme4 = as.character(packageVersion("lme4")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "lme4_factors.json")
