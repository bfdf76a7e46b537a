# R's multilevel imputations of one incomplete data set, fitted and pooled as mlmi does (issue 13).
#
# Reads one CSV of incomplete data (e.g. a study replication's data/missing.parquet as CSV),
# imputes it m times with each of
#   jomo         jomo::jomo.lmer, substantive-model-compatible joint modelling: the analysis model
#                itself (random intercept and slope) is the outcome's model, the covariates get a
#                joint multilevel normal (latent normal for categories) model; level-2 covariates
#                (constant within each cluster, e.g. meanses) at level 2;
#   mice_2l.pan  mice with 2l.pan for incomplete continuous level-1 covariates (cluster -2; the
#                outcome with a random slope, i.e. type 2, as the issue measured it: "random
#                intercept, mathach random"; the other model variables fixed, type 1), 2l.bin for
#                incomplete binary (categorical) ones, 2lonly.norm for incomplete level-2 ones;
# then fits lme4::lmer (REML) to each imputed data set, pools the fixed effects with mice::pool and
# averages broom.mixed's random-effect SDs, correlation and residual SD over the imputations, and
# writes one CSV in the format of mlmi.run.study.replication_estimates:
#   method, term, estimate, std_error, conf_low, conf_high, fmi
# (random-effect rows carry the estimate only). A second CSV (timing=) has, per method, the
# imputation time (the imputation call alone: no R start-up, reading, fitting or pooling), m, the
# sampler's iterations and seconds per imputation, and the number of singular fits.
#
# Only the variables of the formula and its cluster take part: columns the analysis model does not
# use (mlmi's simulated size and schtype) are left out of both imputation models. In mlmi's
# simulated data they are unrelated to the outcome and to the missingness (which depends on
# mathach), so leaving them out costs nothing; jomo.lmer would treat any extra column as auxiliary.
#
# Run (Debian: r-base-core r-cran-lme4 r-cran-mice r-cran-jomo r-cran-pan r-cran-broom.mixed):
#   Rscript benchmarks/r_multilevel.R input=missing.csv output=r_estimates.csv timing=r_timing.csv \
#       m=10 nburn=1000 nbetween=100 maxit=10 seed=1 [methods=jomo,mice_2l.pan]
#       [formula="mathach ~ minority + female + ses + meanses + (1 + ses | schid)"]
#       [categorical=minority,female]
# Defaults are those above. The same input and seed give the same output.
suppressPackageStartupMessages({
  library(lme4)
  library(mice)
  library(jomo)
  library(broom.mixed)
})

DEFAULTS <- list(formula = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)",
                 m = "10", nburn = "1000", nbetween = "100", maxit = "10", seed = "1",
                 methods = "jomo,mice_2l.pan", categorical = "minority,female", timing = "")

#' key=value command-line arguments over DEFAULTS; input and output are required.
parse_args <- function(args) {
  given <- regmatches(args, regexpr("=", args), invert = TRUE)
  values <- setNames(lapply(given, `[`, 2), vapply(given, `[`, "", 1))
  unknown <- setdiff(names(values), c(names(DEFAULTS), "input", "output"))
  if (length(unknown)) stop("unknown argument(s): ", paste(unknown, collapse = ", "))
  opts <- modifyList(DEFAULTS, values)
  for (key in c("input", "output")) if (is.null(opts[[key]])) stop("missing argument ", key, "=")
  for (key in c("m", "nburn", "nbetween", "maxit", "seed")) opts[[key]] <- as.integer(opts[[key]])
  opts$methods <- strsplit(opts$methods, ",")[[1]]
  opts$categorical <- strsplit(opts$categorical, ",")[[1]]
  opts
}

#' The model's columns: outcome, covariates (in formula order), cluster, and which are level 2.
model_roles <- function(formula, data) {
  bars <- lme4::findbars(formula)
  if (length(bars) != 1) stop("one (terms | cluster) random part is supported")
  cluster <- all.vars(bars[[1]][[3]])
  outcome <- all.vars(formula[[2]])
  covariates <- setdiff(all.vars(lme4::nobars(formula)[[3]]), cluster)
  covariates <- union(covariates, setdiff(all.vars(bars[[1]][[2]]), cluster))
  constant <- function(x) all(tapply(x, data[[cluster]], function(v) length(unique(v[!is.na(v)])) <= 1))
  level2 <- covariates[vapply(covariates, function(v) constant(data[[v]]), TRUE)]
  list(outcome = outcome, covariates = covariates, cluster = cluster, level2 = level2,
       random = setdiff(all.vars(bars[[1]][[2]]), cluster))
}

#' Level-2 columns filled within each cluster from its observed value (one value per cluster).
fill_level2 <- function(data, roles) {
  for (v in roles$level2) {
    per_cluster <- tapply(data[[v]], data[[roles$cluster]], function(x) x[!is.na(x)][1])
    data[[v]] <- unname(per_cluster[as.character(data[[roles$cluster]])])
  }
  data
}

#' m completed data sets from jomo.lmer, with the input's column types and cluster name.
impute_jomo <- function(data, formula, roles, opts) {
  cols <- c(roles$outcome, roles$covariates, roles$cluster)
  d <- data[, cols]
  categorical <- intersect(opts$categorical, roles$covariates)
  for (v in categorical) d[[v]] <- factor(d[[v]])
  level <- ifelse(cols %in% roles$level2, 2, 1)
  set.seed(opts$seed)
  seconds <- system.time(
    long <- jomo::jomo.lmer(formula, d, level = level, nburn = opts$nburn, nbetween = opts$nbetween,
                            nimp = opts$m, output = 0, out.iter = .Machine$integer.max)
  )[["elapsed"]]
  names(long)[names(long) == "clus"] <- roles$cluster
  completed <- lapply(seq_len(opts$m), function(k) {
    one <- long[long$Imputation == k, cols]
    for (v in categorical) one[[v]] <- as.numeric(as.character(one[[v]]))
    ids <- as.character(one[[roles$cluster]])
    one[[roles$cluster]] <- if (is.numeric(data[[roles$cluster]])) as.numeric(ids) else ids
    one
  })
  list(completed = completed, seconds = seconds, iterations = opts$nburn + opts$m * opts$nbetween)
}

#' m completed data sets from mice: 2l.pan (level-1 continuous), 2l.bin (binary), 2lonly.norm (level 2).
impute_mice_pan <- function(data, formula, roles, opts) {
  cols <- c(roles$outcome, roles$covariates, roles$cluster)
  d <- data[, cols]
  incomplete <- cols[colSums(is.na(d)) > 0]
  method <- setNames(rep("", length(cols)), cols)
  for (v in incomplete) {
    method[v] <- if (v %in% roles$level2) "2lonly.norm"
                 else if (v %in% opts$categorical) "2l.bin"
                 else "2l.pan"
  }
  pred <- mice::make.predictorMatrix(d)
  pred[, roles$cluster] <- -2
  pred[roles$cluster, ] <- 0
  diag(pred) <- 0
  for (v in incomplete[method[incomplete] == "2l.pan"]) pred[v, roles$outcome] <- 2
  seconds <- system.time(
    imp <- mice::mice(d, m = opts$m, maxit = opts$maxit, method = method, predictorMatrix = pred,
                      seed = opts$seed, printFlag = FALSE)
  )[["elapsed"]]
  list(completed = lapply(seq_len(opts$m), function(k) mice::complete(imp, k)), seconds = seconds,
       iterations = opts$maxit)
}

#' lmer (REML) on each completed data set, pooled: mice::pool for fixed effects, means for the rest.
fit_and_pool <- function(completed, formula, method) {
  fits <- lapply(completed, function(d) lme4::lmer(formula, data = d, REML = TRUE, control = TIGHT))
  pooled <- mice::pool(fits)
  s <- summary(pooled, conf.int = TRUE)
  fixed <- data.frame(method = method, term = as.character(s$term), estimate = s$estimate,
                      std_error = s$std.error, conf_low = s[["2.5 %"]], conf_high = s[["97.5 %"]],
                      fmi = pooled$pooled$fmi)
  ran <- do.call(rbind, lapply(fits, function(f) {
    t <- broom.mixed::tidy(f, effects = "ran_pars", scales = "sdcor")
    data.frame(term = t$term, estimate = t$estimate)
  }))
  ran <- aggregate(estimate ~ term, data = ran, FUN = mean)[, c("term", "estimate")]
  ran <- ran[order(match(ran$term, unique(broom.mixed::tidy(fits[[1]], effects = "ran_pars")$term))), ]
  random <- data.frame(method = method, term = ran$term, estimate = ran$estimate, std_error = NA,
                       conf_low = NA, conf_high = NA, fmi = NA)
  list(estimates = rbind(fixed, random), singular = sum(vapply(fits, lme4::isSingular, TRUE)))
}

#' lmer converged tightly, as mlmi fits (lme4's default stops up to a few 1e-6 REML units short).
TIGHT <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-14, xtol_rel = 1e-14, ftol_rel = 1e-14,
                                    maxeval = 1e5))

IMPUTERS <- list(jomo = impute_jomo, mice_2l.pan = impute_mice_pan)

main <- function() {
  opts <- parse_args(commandArgs(trailingOnly = TRUE))
  formula <- as.formula(opts$formula)
  data <- read.csv(opts$input)
  roles <- model_roles(formula, data)
  data <- fill_level2(data, roles)
  data <- data[order(data[[roles$cluster]]), ]
  unknown <- setdiff(opts$methods, names(IMPUTERS))
  if (length(unknown)) stop("unknown method(s): ", paste(unknown, collapse = ", "))
  estimates <- list()
  timing <- list()
  for (method in opts$methods) {
    imputed <- IMPUTERS[[method]](data, formula, roles, opts)
    result <- fit_and_pool(imputed$completed, formula, method)
    estimates[[method]] <- result$estimates
    timing[[method]] <- data.frame(method = method, m = opts$m, iterations = imputed$iterations,
                                   seconds = imputed$seconds, seconds_per_imputation = imputed$seconds / opts$m,
                                   singular_fits = result$singular)
  }
  write.csv(do.call(rbind, estimates), opts$output, row.names = FALSE, na = "")
  if (nzchar(opts$timing)) write.csv(do.call(rbind, timing), opts$timing, row.names = FALSE)
}

main()
