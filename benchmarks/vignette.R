# The merTools imputation vignette's workflow in R, timed step by step (issue 15; benchmarks/vs_r.py runs it).
#
# On one incomplete data set (CSV, missing cells empty; mlmi's data/missing.parquet as CSV), as the vignette
# does: Amelia imputes m data sets (idvars schid and meanses, noms minority and female), lme4 fits the model to
# the incomplete data listwise and to each imputation (merTools::lmerModList), merTools pools the fixed effects
# (modelFixedEff). Then, for the per-fit comparison, one lmer fit of a given complete data set, repeated.
# Writes one CSV of step, seconds:
#   amelia            the amelia() call (all m imputations)
#   fits_and_pooling  listwise lmer + lmerModList + modelFixedEff
#   workflow          reading the CSV to the pooled table (what the script does, less R's start and loading)
#   one_fit_median    the median of `repeats` lmer() fits of fit_data= (warm: the first fit is not counted)
#
# Run (Debian: r-base-core r-cran-amelia r-cran-lme4 r-cran-mertools):
#   Rscript benchmarks/vignette.R input=missing.csv fit_data=imp_1.csv output=timing.csv m=5 repeats=7
suppressPackageStartupMessages({
  library(Amelia)
  library(lme4)
  library(merTools)
})

FORMULA <- "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"

#' key=value command-line arguments; input, fit_data and output are required.
parse_args <- function(args) {
  given <- regmatches(args, regexpr("=", args), invert = TRUE)
  opts <- modifyList(list(m = "5", repeats = "7"), setNames(lapply(given, `[`, 2), vapply(given, `[`, "", 1)))
  for (key in c("input", "fit_data", "output")) if (is.null(opts[[key]])) stop("missing argument ", key, "=")
  opts$m <- as.integer(opts$m)
  opts$repeats <- as.integer(opts$repeats)
  opts
}

elapsed <- function(expr) system.time(expr)[["elapsed"]]

opts <- parse_args(commandArgs(trailingOnly = TRUE))
set.seed(1)
workflow <- elapsed({
  hsb <- read.csv(opts$input)
  amelia_seconds <- elapsed(impute.out <- amelia(hsb, idvars = c("schid", "meanses"),
                                                 noms = c("minority", "female"), m = opts$m, p2s = 0))
  fits_seconds <- elapsed({
    mod <- lmer(FORMULA, data = hsb)
    modList <- lmerModList(FORMULA, data = impute.out$imputations)
    pooled <- modelFixedEff(modList)
  })
})
complete <- read.csv(opts$fit_data)
invisible(lmer(FORMULA, data = complete))
one_fit <- median(replicate(opts$repeats, elapsed(lmer(FORMULA, data = complete))))
write.csv(data.frame(step = c("amelia", "fits_and_pooling", "workflow", "one_fit_median"),
                     seconds = c(amelia_seconds, fits_seconds, workflow, one_fit)),
          opts$output, row.names = FALSE)
