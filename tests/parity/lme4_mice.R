# The R side of the parity suite (tests/parity/test_lme4_mice.py runs it; it needs no other input).
#
#   Rscript lme4_mice.R cases.json OUTDIR
#
# cases.json is a list of case specifications (written by the test module). For each case
# this script simulates a two-level data set with set.seed(seed), makes predictor cells
# missing completely at random, imputes them with mice (default methods: pmm), and writes to
# OUTDIR/<name>/:
#   incomplete.csv             the data with missing values (empty cells)
#   imp1.csv ... imp<m>.csv    complete(imp, k)
#   lme4.json                  lme4's numbers for every imputed data set (lmer's defaults), and
#                              mice::pool(with(imp, lmer(...))) with every column, on lmer fits
#                              converged tightly (TIGHT below): lmer's default optimizer stops up
#                              to ~2.5e-6 REML units short of the optimum, and pooling amplifies
#                              that (b and riv are differences between imputations; far-tail
#                              p-values scale the statistic's error by |t|^2), so the pooled
#                              reference is taken at lme4's own optimum, reached.
# The grouping column takes no part in the imputation models (predictorMatrix column set
# to 0): as a number it would be a meaningless linear predictor, and the group ids are
# complete, so they are carried through unchanged.
# Values are rounded (predictors to 4 decimals, the response to 3) so that the CSV files
# hold the very numbers R fitted: pmm imputes observed values, which are rounded too.
suppressMessages({library(lme4); library(mice); library(broom.mixed); library(jsonlite)})

TIGHT <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-14, xtol_rel = 1e-14, ftol_rel = 1e-14,
                                    maxeval = 1e5))

simulate <- function(s) {
  set.seed(s$seed)
  sizes <- sample(s$size_min:s$size_max, s$groups, replace = TRUE)
  group <- rep(seq_len(s$groups), sizes)
  n <- length(group)
  shared <- rnorm(n)                              # correlates the predictors with each other
  data <- data.frame(group)
  names(data) <- s$group
  for (x in s$predictors) {
    between <- rnorm(s$groups)[group]
    within <- s$predictor_cor * shared + sqrt(1 - s$predictor_cor^2) * rnorm(n)
    data[[x$name]] <- round(x$mean + x$sd * (sqrt(x$icc) * between + sqrt(1 - x$icc) * within), 4)
  }
  q <- length(s$re_terms)
  cor_re <- if (q == 2) matrix(c(1, s$re_cor, s$re_cor, 1), 2) else diag(q)
  cov_re <- diag(unlist(s$re_sd), q) %*% cor_re %*% diag(unlist(s$re_sd), q)
  u <- matrix(rnorm(s$groups * q), s$groups, q) %*% chol(cov_re)
  z <- sapply(s$re_terms, function(t) if (t == "(Intercept)") rep(1, n) else data[[t]])
  fixed <- unlist(s$fixef)
  x <- cbind(1, as.matrix(data[names(fixed)[-1]]))
  data[[s$response]] <- round(drop(x %*% fixed) + rowSums(z * u[group, , drop = FALSE]) + s$sigma * rnorm(n), 3)
  for (v in names(s$missing)) data[[v]][runif(n) < s$missing[[v]]] <- NA
  data
}

describe <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  re <- ranef(fit, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")
  q <- ncol(re)
  reml <- isREML(fit)
  list(fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       varcorr = vc[c("grp", "var1", "var2", "sdcor")], sigma = sigma(fit), theta = unname(getME(fit, "theta")),
       reml_criterion = if (reml) REMLcrit(fit) else NA, deviance = if (reml) NA else deviance(fit),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit), npar = attr(logLik(fit), "df"),
       nobs = nobs(fit), singular = isSingular(fit), messages = as.list(fit@optinfo$conv$lme4$messages),
       levels = rownames(re), modes = unname(as.matrix(re)),
       cond_var = lapply(seq_len(dim(pv)[3]), function(i) matrix(pv[, , i], q, q)))
}

run_case <- function(s, out) {
  dir <- file.path(out, s$name)
  dir.create(dir, recursive = TRUE, showWarnings = FALSE)
  data <- simulate(s)
  write.csv(data, file.path(dir, "incomplete.csv"), row.names = FALSE, na = "")
  predictors <- make.predictorMatrix(data)
  predictors[, s$group] <- 0
  imp <- mice(data, m = s$m, predictorMatrix = predictors, seed = s$imputation_seed, printFlag = FALSE)
  for (k in seq_len(s$m)) {
    write.csv(complete(imp, k), file.path(dir, sprintf("imp%d.csv", k)), row.names = FALSE)
  }
  model_formula <- s$formula
  model_reml <- s$reml
  fits <- with(imp, lmer(as.formula(model_formula), REML = model_reml))
  tight <- with(imp, lmer(as.formula(model_formula), REML = model_reml, control = TIGHT))
  pooled <- pool(tight)
  result <- list(
    name = s$name, formula = s$formula, reml = s$reml, m = s$m, n = nrow(data),
    missing_rate = as.list(colMeans(is.na(data))), methods = as.list(imp$method),
    imputations = lapply(fits$analyses, describe),
    tight = lapply(tight$analyses, function(fit) list(fixef = as.list(fixef(fit)),
                                                      se = as.list(sqrt(diag(as.matrix(vcov(fit))))))),
    pooled = pooled$pooled,
    summary = summary(pooled, type = "all", conf.int = TRUE),
    versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    mice = as.character(packageVersion("mice")),
                    broom.mixed = as.character(packageVersion("broom.mixed"))))
  writeLines(toJSON(result, digits = NA, auto_unbox = TRUE, dataframe = "columns", na = "null"),
             file.path(dir, "lme4.json"))
}

if (sys.nframe() == 0L) {  # run as a script; pool_tests.R sources this file for simulate() alone
  args <- commandArgs(trailingOnly = TRUE)
  for (s in fromJSON(args[1], simplifyVector = FALSE)) run_case(s, args[2])
}
