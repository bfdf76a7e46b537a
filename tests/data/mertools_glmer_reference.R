# Writes mertools_glmer.json: merTools::modelFixedEff of a glmerModList (merTools 0.5.2, lme4 1.1-31), the
# glmer fits of y ~ x + z + (1 + x | g) (binomial, logit; glmer's defaults: Laplace, nAGQ = 1) on mice's five
# imputations of binary_slope.csv (glmm_mice_imp_<k>.csv, written by glmm_mice_reference.R), with each fit's
# fixed effects exactly as modelFixedEff reads them (broom.mixed's tidy) and the warnings merTools gave.
# Run from tests/data/ (used by tests/test_mertools_glmer.py):
#   Rscript mertools_glmer_reference.R   (R 4.x with lme4, merTools, broom.mixed and jsonlite)
suppressMessages({library(lme4); library(merTools); library(jsonlite)})
source("mertools_common.R")
formula <- y ~ x + z + (1 + x | g)
data <- lapply(sprintf("glmm_mice_imp_%d.csv", 1:5), read.csv)
fits <- glmerModList(formula, data = data, family = binomial)
combined <- model_fixed_eff(fits)
per_fit <- lapply(fits, function(fit) {
  c(tidy_fixed(fit), list(deviance = -2 * as.numeric(logLik(fit)),
                          messages = as.list(unlist(fit@optinfo$conv$lme4$messages))))
})
out <- list(formula = deparse(formula), family = "binomial", link = "logit",
            model_fixed_eff = combined$table, per_fit = per_fit, warnings = combined$warnings,
            model_fixed_eff_source = paste(deparse(merTools::modelFixedEff), collapse = "\n"),
            versions = list(merTools = as.character(packageVersion("merTools")),
                            lme4 = as.character(packageVersion("lme4")),
                            broom.mixed = as.character(packageVersion("broom.mixed")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, dataframe = "columns", pretty = TRUE), "mertools_glmer.json")
