# The R side of tests/parity/test_three_level_vs_r.py: lme4 and mice::pool on data sets mlmi imputed.
#
#   Rscript three_level_mice.R FOLDER FORMULA M
#
# Imputes nothing: reads FOLDER/imp1.csv ... imp<M>.csv (three-level data completed by mlmi's miceforest,
# written by the test), fits lmer(FORMULA) by REML on each, converged tightly (lmer's default optimizer
# stops up to ~2.5e-6 REML units short of the optimum, and pooling amplifies that: b and riv are
# differences between imputations), pools them with mice::pool (as.mira), and writes FOLDER/lme4.json:
# per fit the fixed effects, their SEs, as.data.frame(VarCorr()) and the REML criterion; the pooled
# table (pooled$pooled) and summary(pooled, type = "all", conf.int = TRUE).
suppressMessages({library(lme4); library(mice); library(broom.mixed); library(jsonlite)})

TIGHT <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-14, xtol_rel = 1e-14, ftol_rel = 1e-14,
                                    maxeval = 1e5))

args <- commandArgs(trailingOnly = TRUE)
folder <- args[1]
model_formula <- as.formula(args[2])
m <- as.integer(args[3])
fits <- lapply(seq_len(m), function(k) {
  lmer(model_formula, data = read.csv(file.path(folder, sprintf("imp%d.csv", k))), REML = TRUE, control = TIGHT)
})
describe <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       varcorr = vc[c("grp", "var1", "var2", "sdcor")], reml_criterion = REMLcrit(fit),
       n_groups = as.list(ngrps(fit)), nobs = nobs(fit), npar = attr(logLik(fit), "df"))
}
pooled <- pool(as.mira(fits))
result <- list(formula = args[2], m = m, fits = lapply(fits, describe), pooled = pooled$pooled,
               summary = summary(pooled, type = "all", conf.int = TRUE),
               versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                               mice = as.character(packageVersion("mice"))))
writeLines(toJSON(result, digits = NA, auto_unbox = TRUE, dataframe = "columns", na = "null"),
           file.path(folder, "lme4.json"))
