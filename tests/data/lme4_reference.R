# Writes small_lme4.json: lme4's numbers for small.csv and small_singular.csv (run from tests/data/).
# Rscript lme4_reference.R   (R 4.x with lme4 and jsonlite; Debian: r-cran-lme4 r-cran-jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
formulas <- c(
  full = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)",
  intercept = "mathach ~ ses + (1 | schid)",
  slope = "mathach ~ ses + (0 + ses | schid)"
)
describe <- function(f, reml, file = "small.csv") {
  fit <- lmer(as.formula(f), data = read.csv(file), REML = reml)
  vc <- as.data.frame(VarCorr(fit))
  re <- ranef(fit, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")
  list(formula = f, reml = reml, data = file, singular = isSingular(fit),
       fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       vcov = unname(as.matrix(vcov(fit))),
       sdcor = vc$sdcor, sigma = sigma(fit),
       reml_criterion = if (reml) REMLcrit(fit) else NA, loglik = as.numeric(logLik(fit)),
       aic = AIC(fit), bic = BIC(fit), npar = attr(logLik(fit), "df"),
       modes = unname(as.matrix(re)),
       cond_var = lapply(seq_len(dim(pv)[3]), function(i) unname(pv[, , i, drop = TRUE])))
}
out <- list(full = describe(formulas[["full"]], TRUE), intercept = describe(formulas[["intercept"]], TRUE),
            slope = describe(formulas[["slope"]], TRUE), full_ml = describe(formulas[["full"]], FALSE),
            singular = describe(formulas[["full"]], TRUE, "small_singular.csv"),
            versions = list(lme4 = as.character(packageVersion("lme4")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "small_lme4.json")
