# The frozen R reference of tests/parity/test_d1_mitml_mice.py (issue 17, item 1): pooled multi-parameter Wald
# tests (D1) by mitml 0.4-4 and mice 3.15 on lme4 fits of multiply imputed multilevel data.
#
#   cd tests/parity && Rscript pool_tests.R ../data
#
# writes to ../data (tests/data):
#   pool_tests_<case>.csv            the incomplete data set (empty cells are missing)
#   pool_tests_<case>_imputed.csv    mice's imputed values: one row per missing cell (row counted from 1, column),
#                                    then imputation 1..m's value; the test puts them into the incomplete data
#   pool_tests_reference.json        per case and test: mitml::testModels(method = "D1") or
#                                    mitml::testConstraints(method = "D1"), each without df.com (Li et al.'s df)
#                                    and with df.com = the fit's residual df (n - npar, Reiter's df), and
#                                    mice::D1 with its default dfcom (the same residual df, via broom.mixed's
#                                    glance): statistic (F.value), df1, df2, p (P(>F)), riv (RIV)
#
# Cases: two data sets of tests/parity/lme4_mice.R (its simulate() and its imputation, the same case settings as
# test_lme4_mice.py's CASES, so the same data), and one with a three-level factor predictor (f: a, b, c; missing
# completely at random, imputed by pmm on its codes) simulated here. Every imputed data set is fitted with lmer
# converged tightly (lme4_mice.R's TIGHT: lmer's default optimizer stops a little short of the optimum, and
# the between-imputation variance amplifies that).
# mitml's testModels reads a term test as a comparison with the model without those terms (D1 uses only the
# names of the null model's parameters); testConstraints takes "lhs - rhs" for "lhs = rhs".
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "../data"
local({
  here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)[1]))
  source(file.path(here, "lme4_mice.R"))   # simulate(), TIGHT, the packages
})
suppressMessages(library(mitml))

# From test_lme4_mice.py's CASES, unchanged.
LME4_MICE_CASES <- fromJSON('[
 {"name": "intercept_30x20_m20", "seed": 101, "imputation_seed": 1101, "groups": 30, "size_min": 15,
  "size_max": 25, "group": "g", "response": "y",
  "predictors": [{"name": "x1", "mean": 0.0, "sd": 1.0, "icc": 0.2}, {"name": "x2", "mean": 5, "sd": 2, "icc": 0.2}],
  "predictor_cor": 0.4, "fixef": {"(Intercept)": 2.0, "x1": 0.8, "x2": -0.5}, "re_terms": ["(Intercept)"],
  "re_sd": [1.0], "re_cor": 0, "sigma": 2.0, "missing": {"x1": 0.05, "x2": 0.10}, "m": 20, "reml": true,
  "formula": "y ~ x1 + x2 + (1 | g)"},
 {"name": "ml_80x15_m5", "seed": 104, "imputation_seed": 1104, "groups": 80, "size_min": 10, "size_max": 20,
  "group": "g", "response": "y",
  "predictors": [{"name": "x1", "mean": 0.0, "sd": 1.0, "icc": 0.2}, {"name": "x2", "mean": 0.0, "sd": 1.0, "icc": 0.2}],
  "predictor_cor": 0.5, "fixef": {"(Intercept)": 0.5, "x1": 0.7, "x2": -0.3}, "re_terms": ["(Intercept)", "x1"],
  "re_sd": [1.0, 0.5], "re_cor": -0.3, "sigma": 1.2, "missing": {"x1": 0.15, "x2": 0.15}, "m": 5, "reml": false,
  "formula": "y ~ x1 + x2 + (1 + x1 | g)"}
]', simplifyVector = FALSE)

# A three-level factor f (a, b, c) that depends on x1 and the group, in the outcome; f and x1 partly missing.
simulate_factor <- function(seed) {
  set.seed(seed)
  groups <- 100
  g <- rep(seq_len(groups), sample(8:16, groups, replace = TRUE))
  n <- length(g)
  x1 <- round(sqrt(0.2) * rnorm(groups)[g] + sqrt(0.8) * rnorm(n), 4)
  propensity <- 0.5 * x1 + 0.5 * rnorm(groups)[g] + rnorm(n)
  f <- cut(propensity, quantile(propensity, c(0, 1/3, 2/3, 1)), labels = c("a", "b", "c"), include.lowest = TRUE)
  y <- round(1 + 0.5 * x1 + 0.4 * (f == "b") + 0.9 * (f == "c") + 0.8 * rnorm(groups)[g] + 1.5 * rnorm(n), 3)
  data <- data.frame(g = g, x1 = x1, f = as.integer(f), y = y)  # codes 1..3 while imputing (see LEVELS)
  data$f[runif(n) < 0.20] <- NA
  data$x1[runif(n) < 0.10] <- NA
  data
}

# f is imputed as its codes 1..3 by pmm (which donates observed codes only), not by polyreg, which needs the
# nnet package that Debian's r-cran-mice does not bring; the files and the fits see the levels a, b, c.
LEVELS <- c("a", "b", "c")
as_levels <- function(data) {
  if ("f" %in% names(data)) data$f <- factor(LEVELS[data$f], levels = LEVELS)
  data
}

# Each case: its data, imputation seed, m, model and tests. A test has either terms (tested by comparing with
# `null`, the model without them) or constraints (mitml's, as "lhs - rhs").
CASES <- list(
  list(name = "intercept_30x20_m20", spec = LME4_MICE_CASES[[1]], tests = list(
    list(name = "x1_x2", terms = c("x1", "x2"), null = "y ~ 1 + (1 | g)"),
    list(name = "x2", terms = "x2", null = "y ~ x1 + (1 | g)"),
    list(name = "sum", constraints = "x1 + x2 = 0", mitml = "x1 + x2"))),
  list(name = "ml_80x15_m5", spec = LME4_MICE_CASES[[2]], tests = list(
    list(name = "x1_x2", terms = c("x1", "x2"), null = "y ~ 1 + (1 + x1 | g)"),
    list(name = "two", constraints = c("x1 + x2 = 0.5", "x1 - 2*x2 = 0"), mitml = c("x1 + x2 - 0.5", "x1 - 2*x2")))),
  list(name = "factor3_100x12_m5", data = simulate_factor(201), imputation_seed = 1201, m = 5, reml = TRUE,
       group = "g", formula = "y ~ x1 + f + (1 | g)", tests = list(
    list(name = "f", terms = "f", null = "y ~ x1 + (1 | g)"),
    list(name = "f_x1", terms = c("f", "x1"), null = "y ~ 1 + (1 | g)"),
    list(name = "b_equals_c", constraints = "fb - fc = 0", mitml = "fb - fc"),
    list(name = "levels", constraints = c("fb = 0.4", "2*fc - x1 = 1"), mitml = c("fb - 0.4", "2*fc - x1 - 1"))))
)

d1_numbers <- function(test) {
  row <- test$test
  list(statistic = row[1, "F.value"], df1 = row[1, "df1"], df2 = row[1, "df2"], p = row[1, "P(>F)"],
       riv = row[1, "RIV"])
}

run_case <- function(case) {
  if (!is.null(case$spec)) {
    s <- case$spec
    data <- simulate(s)
    case$imputation_seed <- s$imputation_seed
    case$m <- s$m
    case$reml <- s$reml
    case$group <- s$group
    case$formula <- s$formula
  } else {
    data <- case$data
  }
  predictors <- make.predictorMatrix(data)
  predictors[, case$group] <- 0
  imp <- mice(data, m = case$m, predictorMatrix = predictors, seed = case$imputation_seed, printFlag = FALSE)
  write.csv(as_levels(data), file.path(out, sprintf("pool_tests_%s.csv", case$name)), row.names = FALSE, na = "")
  cells <- which(is.na(data), arr.ind = TRUE)
  cells <- cells[order(cells[, "col"], cells[, "row"]), , drop = FALSE]
  imputed <- data.frame(row = cells[, "row"], column = names(data)[cells[, "col"]])
  for (k in seq_len(case$m)) {
    completed <- as_levels(complete(imp, k))
    imputed[[as.character(k)]] <- mapply(function(r, v) as.character(completed[[v]][r]), imputed$row, imputed$column)
  }
  write.csv(imputed, file.path(out, sprintf("pool_tests_%s_imputed.csv", case$name)), row.names = FALSE)

  reml <- case$reml
  completed <- lapply(seq_len(case$m), function(k) as_levels(complete(imp, k)))
  fit_all <- function(formula) {
    as.mira(lapply(completed, function(d) lmer(as.formula(formula), data = d, REML = reml, control = TIGHT)))
  }
  full <- fit_all(case$formula)
  models <- full$analyses
  dfcom <- df.residual(models[[1]])
  tests <- lapply(case$tests, function(test) {
    if (!is.null(test$terms)) {
      null <- fit_all(test$null)
      result <- list(
        name = test$name, terms = test$terms,
        mitml = d1_numbers(testModels(models, null$analyses, method = "D1")),
        mitml_dfcom = d1_numbers(testModels(models, null$analyses, method = "D1", df.com = dfcom)),
        mice = {
          mice_d1 <- D1(full, null)
          c(d1_numbers(list(test = mice_d1$result)), dfcom = mice_d1$dfcom)
        })
    } else {
      result <- list(
        name = test$name, constraints = test$constraints, mitml_constraints = test$mitml,
        mitml = d1_numbers(testConstraints(models, constraints = test$mitml, method = "D1")),
        mitml_dfcom = d1_numbers(testConstraints(models, constraints = test$mitml, method = "D1", df.com = dfcom)))
    }
    result
  })
  list(name = case$name, formula = case$formula, reml = reml, m = case$m, n = nrow(data), dfcom = dfcom,
       npar = attr(logLik(models[[1]]), "df"), tests = tests,
       fixef = lapply(models, function(fit) as.list(fixef(fit))))
}

reference <- list(
  cases = lapply(CASES, run_case),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  mice = as.character(packageVersion("mice")), mitml = as.character(packageVersion("mitml")),
                  broom.mixed = as.character(packageVersion("broom.mixed"))))
writeLines(toJSON(reference, digits = NA, auto_unbox = TRUE, na = "null", pretty = TRUE),
           file.path(out, "pool_tests_reference.json"))
