# The frozen R reference of tests/parity/test_r2_vc.py (issue 17, items 3 and 4): multilevel R² by
# mitml::multilevelR2 (mitml 0.4-4) per fit and pooled, and the Wald covariance of each fit's variance parameters
# on the log-SD / Fisher-z / log-sigma scale, from a numerical Hessian of lme4's own deviance.
#
#   cd tests/parity && Rscript r2_vc.R ../data
#
# reads the imputed data sets that pool_tests.R froze (tests/data/pool_tests_<case>.csv with the imputed cells of
# pool_tests_<case>_imputed.csv, put back as test_d1_mitml_mice.py puts them) and tests/data/small.csv, fits every
# data set with lmer converged tightly (lme4_mice.R's TIGHT), and writes ../data/r2_vc_reference.json:
#   per case: formula, reml, m, and per fit
#     r2:  mitml::multilevelR2(fit) (RB1, RB2, SB, MVP) and, where performance is installed,
#          performance::r2_nakagawa(fit) (marginal, conditional; an independent reading of Nakagawa & Schielzeth)
#     vc:  names (broom.mixed's), phi = (log sd..., atanh(cor)..., log sigma) and vcov = 2 H^-1, H the Hessian in
#          phi of the unprofiled deviance (-2 logLik for ML, the REML criterion for REML) built from lme4's own
#          pieces at theta (ldL2, ldRX2 and the penalised RSS of lmer's devFunOnly function) and differentiated by
#          numDeriv::hessian (Richardson extrapolation from absolute steps of 0.01); for ML fits also lme4's own route to Wald SEs of the
#          variance parameters, lme4:::devfun2 (the ML deviance in sd, cor and sigma, as profile() uses it)
#          differentiated by numDeriv and carried to phi by the delta method (vcov_devfun2)
#   and mitml::multilevelR2(list of fits): the pooled R² (the mean over the fits).
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "../data"
local({
  here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)[1]))
  source(file.path(here, "lme4_mice.R"))   # TIGHT, the packages
})
suppressMessages({library(mitml); library(numDeriv)})
has_performance <- requireNamespace("performance", quietly = TRUE)

# numDeriv's Hessian of f at x with absolute steps from 0.01 down (Richardson, 4 halvings): numDeriv's default steps
# are relative to |x|, too small (round-off) for a parameter near 0, such as the log of an SD near 1.
hessian_at <- function(f, x) {
  hessian(function(delta) f(x + delta), rep(0, length(x)), method.args = list(eps = 1e-2, zero.tol = 1, r = 4))
}

# The imputed data sets of a pool_tests.R case, as test_d1_mitml_mice.py rebuilds them.
imputed_sets <- function(name, m) {
  incomplete <- read.csv(file.path(out, sprintf("pool_tests_%s.csv", name)))
  cells <- read.csv(file.path(out, sprintf("pool_tests_%s_imputed.csv", name)), colClasses = "character")
  lapply(seq_len(m), function(k) {
    data <- incomplete
    for (column in unique(cells$column)) {
      part <- cells[cells$column == column, ]
      values <- part[[paste0("X", k)]]
      data[[column]][as.integer(part$row)] <- if (is.numeric(incomplete[[column]])) as.numeric(values) else values
    }
    stopifnot(!anyNA(data))
    if ("f" %in% names(data)) data$f <- factor(data$f, levels = c("a", "b", "c"))
    data
  })
}

# phi = (log sd..., atanh(cor)..., log sigma) of a fit, in broom.mixed's order (sd__ terms, cor__ pairs, sigma).
phi_of <- function(fit) {
  vc <- VarCorr(fit)[[1]]
  sd <- attr(vc, "stddev")
  cor <- attr(vc, "correlation")
  q <- length(sd)
  pairs <- which(upper.tri(cor), arr.ind = TRUE)
  pairs <- pairs[order(pairs[, "row"], pairs[, "col"]), , drop = FALSE]
  terms <- names(sd)
  list(value = c(log(sd), atanh(cor[pairs]), log(sigma(fit))),
       names = c(paste0("sd__", terms), if (nrow(pairs)) paste0("cor__", terms[pairs[, 1]], ".", terms[pairs[, 2]]),
                 "sd__Observation"),
       q = q, pairs = pairs)
}

# The unprofiled deviance as a function of phi, from lme4's pieces at theta = chol(G / sigma^2) (column-wise
# lower triangle, lme4's order).
unprofiled <- function(fit) {
  devfun <- update(fit, devFunOnly = TRUE)
  env <- environment(devfun)
  reml <- isREML(fit)
  shape <- phi_of(fit)
  q <- shape$q
  n <- nobs(fit)
  p <- length(fixef(fit))
  function(phi) {
    sd <- exp(phi[seq_len(q)])
    cor <- diag(q)
    if (nrow(shape$pairs)) {
      cor[shape$pairs] <- tanh(phi[q + seq_len(nrow(shape$pairs))])
      cor[shape$pairs[, 2:1, drop = FALSE]] <- cor[shape$pairs]
    }
    sigma <- exp(phi[length(phi)])
    lambda <- t(chol(diag(sd, q) %*% cor %*% diag(sd, q) / sigma^2))
    devfun(lambda[lower.tri(lambda, diag = TRUE)])
    pwrss <- env$resp$wrss() + env$pp$sqrL(1)
    if (reml) env$pp$ldL2() + env$pp$ldRX2() + pwrss / sigma^2 + (n - p) * log(2 * pi * sigma^2)
    else env$pp$ldL2() + pwrss / sigma^2 + n * log(2 * pi * sigma^2)
  }
}

# lme4's devfun2 route (ML only): Hessian in (sd, cor, sigma), then the delta method to phi.
devfun2_vcov <- function(fit, shape) {
  dd <- lme4:::devfun2(fit, useSc = TRUE, signames = FALSE)
  at <- attr(dd, "optimum")[seq_len(length(shape$value))]
  vcov_sd <- 2 * solve(hessian_at(dd, at))
  # devfun2's order: the sd/cor matrix's lower triangle column by column, then sigma
  vc <- VarCorr(fit)[[1]]
  q <- shape$q
  index <- matrix(0, q, q)
  index[lower.tri(index, diag = TRUE)] <- seq_len(q * (q + 1) / 2)
  order <- c(diag(index), index[shape$pairs[, 2:1, drop = FALSE]], length(at))
  scale <- 1 / c(attr(vc, "stddev"), 1 - attr(vc, "correlation")[shape$pairs]^2, sigma(fit))  # d phi / d (sd, cor, sigma)
  jac <- diag(scale, length(scale))
  jac %*% vcov_sd[order, order] %*% jac
}

describe <- function(fit) {
  shape <- phi_of(fit)
  dev <- unprofiled(fit)
  at_optimum <- dev(shape$value)
  own <- if (isREML(fit)) REMLcrit(fit) else deviance(fit)
  stopifnot(abs(at_optimum - own) < 1e-6 * abs(own))      # the pieces make lme4's own criterion
  vcov <- 2 * solve(hessian_at(dev, shape$value))
  result <- list(
    r2 = c(as.list(multilevelR2(fit)),
           if (has_performance) {
             ns <- performance::r2_nakagawa(fit)
             list(marginal = unname(ns$R2_marginal), conditional = unname(ns$R2_conditional))
           }),
    vc = list(names = shape$names, phi = shape$value, vcov = vcov))
  if (!isREML(fit)) result$vc$vcov_devfun2 <- devfun2_vcov(fit, shape)
  result
}

run_case <- function(name, sets, formula, reml) {
  fits <- lapply(sets, function(d) lmer(as.formula(formula), data = d, REML = reml, control = TIGHT))
  list(name = name, formula = formula, reml = reml, m = length(sets), fits = lapply(fits, describe),
       pooled_r2 = as.list(multilevelR2(fits)))
}

pool_cases <- fromJSON(file.path(out, "pool_tests_reference.json"), simplifyVector = FALSE)$cases
small <- read.csv(file.path(out, "small.csv"))
small_formula <- "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"
reference <- list(
  cases = c(lapply(pool_cases, function(case) run_case(case$name, imputed_sets(case$name, case$m), case$formula,
                                                       case$reml)),
            list(run_case("small_reml", list(small), small_formula, TRUE),
                 run_case("small_ml", list(small), small_formula, FALSE))),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  mitml = as.character(packageVersion("mitml")), numDeriv = as.character(packageVersion("numDeriv")),
                  performance = if (has_performance) as.character(packageVersion("performance")) else NULL))
writeLines(toJSON(reference, digits = NA, auto_unbox = TRUE, na = "null", pretty = TRUE),
           file.path(out, "r2_vc_reference.json"))
