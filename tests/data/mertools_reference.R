# merTools::modelFixedEff of m lmer fits, as JSON on stdout (used by tests/test_mertools.py).
# Rscript mertools_reference.R FORMULA DATA_1.csv ... DATA_m.csv
# (R 4.x with lme4, merTools, broom.mixed and jsonlite; Debian: r-cran-mertools r-cran-jsonlite)
suppressMessages({library(lme4); library(merTools); library(jsonlite)})
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "mertools_common.R"))
args <- commandArgs(trailingOnly = TRUE)
fits <- lmerModList(as.formula(args[1]), data = lapply(args[-1], read.csv))
combined <- model_fixed_eff(fits)
out <- list(model_fixed_eff = combined$table, per_fit = lapply(fits, tidy_fixed), warnings = combined$warnings,
            versions = list(merTools = as.character(packageVersion("merTools")),
                            lme4 = as.character(packageVersion("lme4")), R = R.version.string))
cat(toJSON(out, digits = NA, auto_unbox = TRUE, dataframe = "columns"))
