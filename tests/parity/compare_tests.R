# The frozen R reference of tests/parity/test_compare_mitml_mice.py (issue 17, item 2): pooled likelihood-ratio
# comparisons of nested lme4 models on multiply imputed data, D2 (Li, Meng, Raghunathan & Rubin 1991) and D3
# (Meng & Rubin 1992), by mitml 0.4-4 and mice 3.15.
#
#   cd tests/parity && Rscript compare_tests.R ../data
#
# reads the data sets pool_tests.R froze in ../data (pool_tests_<case>.csv, the incomplete data, and
# pool_tests_<case>_imputed.csv, mice's imputed cells), puts the imputed values back as the Python test does, and
# writes ../data/compare_tests_reference.json: per case and comparison (the analysis model `formula` against the
# nested `compare` model),
#   mitml_d3     mitml::testModels(full, null, method = "D3"): each imputation's ML log-likelihood at the pooled
#                estimates of all parameters (fixed effects, the random effects' covariance matrix, sigma^2),
#                Meng & Rubin's D3 (what mlmi's D3 is)
#   loglik       per imputation: logLik of each model, and mitml's log-likelihood at the pooled estimates
#                (mitml:::.evaluateUserLogLik, lme4::devfun2 at the pooled theta and sigma with the pooled fixed
#                part as an offset)
#   mitml_d2     mitml::testModels(full, null, method = "D2", use = "likelihood"): D2 from the m LR chi-squares
#   mice_d2      mice::D2(full, null, use = "likelihood") (which calls mitml's)
#   mice_d3      mice::D3(full, null): NOT Meng & Rubin's D3 for lmer fits: it fixes only the fixed effects at
#                their pooled values (an offset) and refits the variance components and an intercept (mice's
#                fix.coef updates to `y ~ (1 | g)`, which has one); recorded to show the difference, not matched
# each with statistic (F.value), df1, df2, p (P(>F)), riv (RIV). All fits by ML (REML = FALSE: mitml refits REML
# fits with ML for D3, and for D2 on likelihoods), converged tightly (lme4_mice.R's TIGHT).
# One comparison ("slope_reml") is also made on REML fits: models that differ only in their random part have
# comparable REML likelihoods, and mlmi's D2 then pools the REML LR chi-squares; mitml would refit with ML, so
# the reference is mitml's own D2 arithmetic (mitml:::.D2) on the REML chi-squares (`reml_d2`).
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "../data"
local({
  here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)[1]))
  source(file.path(here, "lme4_mice.R"))   # TIGHT, the packages
})
suppressMessages(library(mitml))

CASES <- list(
  list(name = "intercept_30x20_m20", m = 20, formula = "y ~ x1 + x2 + (1 | g)", comparisons = list(
    list(name = "x2", compare = "y ~ x1 + (1 | g)"),
    list(name = "none", compare = "y ~ 1 + (1 | g)"))),
  list(name = "ml_80x15_m5", m = 5, formula = "y ~ x1 + x2 + (1 + x1 | g)", comparisons = list(
    list(name = "slope", compare = "y ~ x1 + x2 + (1 | g)", reml_too = TRUE),
    list(name = "x2_slope", compare = "y ~ x1 + (1 | g)"))),
  list(name = "factor3_100x12_m5", m = 5, formula = "y ~ x1 + f + (1 | g)", comparisons = list(
    list(name = "f", compare = "y ~ x1 + (1 | g)")))
)

# The m imputed data sets of a case: the incomplete data with the imputed cells put back (as the Python test's
# imputed_data_sets); f is a factor with levels a, b, c.
imputed_data_sets <- function(name, m) {
  incomplete <- read.csv(file.path(out, sprintf("pool_tests_%s.csv", name)), stringsAsFactors = FALSE)
  cells <- read.csv(file.path(out, sprintf("pool_tests_%s_imputed.csv", name)), colClasses = "character",
                    check.names = FALSE)
  lapply(seq_len(m), function(k) {
    data <- incomplete
    for (i in seq_len(nrow(cells))) {
      column <- cells$column[i]
      value <- cells[[as.character(k)]][i]
      data[[column]][as.integer(cells$row[i])] <- if (is.numeric(incomplete[[column]])) as.numeric(value) else value
    }
    stopifnot(!anyNA(data))
    if ("f" %in% names(data)) data$f <- factor(data$f, levels = c("a", "b", "c"))
    data
  })
}

numbers <- function(test) {
  row <- if (is.matrix(test)) test else test$test
  list(statistic = row[1, "F.value"], df1 = row[1, "df1"], df2 = row[1, "df2"], p = row[1, "P(>F)"],
       riv = row[1, "RIV"])
}

mice_numbers <- function(result) {
  r <- result$result
  if (is.matrix(r)) return(numbers(r))
  list(statistic = r[1], df1 = r[2], df2 = r[3], p = r[4], riv = r[5])
}

run_case <- function(case) {
  sets <- imputed_data_sets(case$name, case$m)
  fit_all <- function(formula, reml) {
    # The call holds the formula and REML as values, and the formula's environment holds the data set (as
    # with(imp, lmer(...)) has it): mitml's refit at the pooled estimates re-evaluates the call, and mice's
    # fix.coef refits from a model frame without the grouping column, which it then finds there.
    as.mira(lapply(sets, function(d) {
      env <- list2env(c(d, list(d = d)), parent = globalenv())
      eval(bquote(lmer(.(as.formula(formula, env = env)), data = d, REML = .(reml), control = TIGHT)), env)
    }))
  }
  full <- fit_all(case$formula, FALSE)
  comparisons <- lapply(case$comparisons, function(comparison) {
    null <- fit_all(comparison$compare, FALSE)
    ll <- mitml:::.evaluateUserLogLik(full$analyses)
    ll0 <- mitml:::.evaluateUserLogLik(null$analyses)
    result <- list(
      name = comparison$name, compare = comparison$compare,
      mitml_d3 = numbers(testModels(full$analyses, null$analyses, method = "D3")),
      mitml_d2 = numbers(testModels(full$analyses, null$analyses, method = "D2", use = "likelihood")),
      mice_d2 = mice_numbers(D2(full, null, use = "likelihood")),
      mice_d3 = mice_numbers(D3(full, null)),
      loglik = list(full = ll$LL, full_pooled = ll$LL.pooled, compare = ll0$LL, compare_pooled = ll0$LL.pooled,
                    npar_full = ll$df, npar_compare = ll0$df))
    if (isTRUE(comparison$reml_too)) {
      ll_reml <- sapply(fit_all(case$formula, TRUE)$analyses, function(f) as.numeric(logLik(f)))
      ll0_reml <- sapply(fit_all(comparison$compare, TRUE)$analyses, function(f) as.numeric(logLik(f)))
      d2 <- mitml:::.D2(d = -2 * (ll0_reml - ll_reml), k = ll$df - ll0$df)
      d2_p <- pf(d2$F, d2$k, d2$v, lower.tail = FALSE)
      result$reml_d2 <- list(statistic = d2$F, df1 = d2$k, df2 = d2$v, p = d2_p, riv = d2$r)
      result$loglik$full_reml <- ll_reml
      result$loglik$compare_reml <- ll0_reml
    }
    result
  })
  list(name = case$name, formula = case$formula, m = case$m, comparisons = comparisons)
}

reference <- list(
  cases = lapply(CASES, run_case),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  mice = as.character(packageVersion("mice")), mitml = as.character(packageVersion("mitml"))))
writeLines(toJSON(reference, digits = NA, auto_unbox = TRUE, na = "null", pretty = TRUE),
           file.path(out, "compare_tests_reference.json"))
