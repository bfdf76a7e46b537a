# merTools::modelFixedEff of m lmer fits, as JSON on stdout (used by tests/test_mertools.py).
# Rscript mertools_reference.R FORMULA DATA_1.csv ... DATA_m.csv
# (R 4.x with lme4, merTools, broom.mixed and jsonlite; Debian: r-cran-mertools r-cran-jsonlite)
suppressMessages({library(lme4); library(merTools); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
fits <- lmerModList(as.formula(args[1]), data = lapply(args[-1], read.csv))
warned <- character(0)
table <- withCallingHandlers(modelFixedEff(fits), warning = function(w) {
  warned <<- c(warned, conditionMessage(w))
  invokeRestart("muffleWarning")
})
# Each fit's fixed effects exactly as modelFixedEff reads them (broom.mixed's tidy).
per_fit <- lapply(fits, function(fit) {
  tidied <- broom.mixed::tidy(fit, effects = "fixed")
  list(term = tidied$term, estimate = tidied$estimate, std_error = tidied$std.error)
})
out <- list(model_fixed_eff = table, per_fit = per_fit, warnings = as.list(warned),
            versions = list(merTools = as.character(packageVersion("merTools")),
                            lme4 = as.character(packageVersion("lme4")), R = R.version.string))
cat(toJSON(out, digits = NA, auto_unbox = TRUE, dataframe = "columns"))
