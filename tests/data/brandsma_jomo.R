# The frozen brandsma reference of tests/parity/test_brandsma_multilevel.py (issue 13): R's
# substantive-model-compatible multilevel imputation of real data with a random slope.
#
# Data: mice::brandsma (Brandsma & Knuver 1989; Snijders & Bosker 2012): 4106 pupils in 216 Dutch
# schools. Analysis model
#     lpo ~ iqv + ses + (1 + iqv | sch)
# language test score on verbal IQ (random slope) and SES, both centred in the data: the two
# incomplete covariates of a random-slope model (iqv's slope is the hard part: design §9). Pupils
# without lpo (204) are left out: under this model they carry no information on its parameters
# once their outcome would be imputed, and mlmi's sampler is asked to impute covariates, not
# outcomes. Two cases, each written with only the model's columns and sch:
#   brandsma          the real holes: 3902 pupils in 211 schools, iqv 16 and ses 121 missing
#                     (tests/data/brandsma.csv). So few holes hardly move the estimates: even the
#                     listwise fit is within 0.2 SE of jomo's;
#   brandsma_iqv_mar  the same with iqv also missing at random on lpo (mean probability 0.3, log
#                     odds ratio 2 per SD of lpo; tests/data/brandsma_iqv_mar.csv): here listwise
#                     deletion and imputations that ignore the slope miss (the case that tells).
#
# jomo: jomo::jomo.lmer(lpo ~ iqv + ses + (1 + iqv | sch)), m = 20, nburn = 2000, nbetween = 250,
#   set.seed(SEED). The chains were checked with jomo.lmer.MCMCchain on brandsma (3000 iterations
#   from the default start): the substantive model's fixed effects, SDs and sigma are stationary
#   from the first 500 iterations; the slowest, the SD of the iqv slope, has autocorrelation 0.22
#   at lag 50 and about 0 from lag 100, so nburn = 2000 and nbetween = 250 are generous.
# mice_2l.pan: mice(method 2l.pan for iqv and ses; sch -2; lpo with a random slope (type 2), the
#   other covariate fixed (type 1)), m = 20, maxit = 10, seed = SEED; for comparison only.
# listwise: lmer on the complete cases, for comparison only.
# Each imputed data set is fitted with lme4::lmer (REML, converged tightly) and pooled with
# mice::pool (Barnard-Rubin df, dfcom as mice finds it); the random-effect SDs, correlation and
# sigma are the mean over imputations of broom.mixed's ran_pars (between_sd: their SD over
# imputations), as mlmi's pooled/random_effects.csv.
#
# Rerun from the repository's top folder (about 6 minutes of one core; R with lme4, mice, jomo,
# pan, broom.mixed, jsonlite; Debian: r-cran-lme4 r-cran-mice r-cran-jomo r-cran-pan
# r-cran-broom.mixed r-cran-jsonlite):
#     Rscript tests/data/brandsma_jomo.R
# It rewrites tests/data/brandsma.csv, brandsma_iqv_mar.csv and brandsma_jomo.json; the same R and
# package versions give the same files.
suppressPackageStartupMessages({
  library(lme4)
  library(mice)
  library(jomo)
  library(broom.mixed)
  library(jsonlite)
})

SEED <- 20261130
M <- 20
NBURN <- 2000
NBETWEEN <- 250
MAXIT <- 10
MAR_PROB <- 0.3
MAR_STRENGTH <- 2
FORMULA <- lpo ~ iqv + ses + (1 + iqv | sch)
HERE <- "tests/data"
# lmer converged tightly, as mlmi fits (lme4's default stops up to a few 1e-6 REML units short).
TIGHT <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-14, xtol_rel = 1e-14, ftol_rel = 1e-14,
                                    maxeval = 1e5))

#' Fixed effects pooled by mice::pool, and the random-effect parameters' mean and SD over fits.
pool_fits <- function(fits) {
  pooled <- mice::pool(fits)
  s <- summary(pooled, conf.int = TRUE)
  fixed <- data.frame(term = as.character(s$term), estimate = s$estimate, std_error = s$std.error,
                      df = s$df, conf_low = s[["2.5 %"]], conf_high = s[["97.5 %"]],
                      riv = pooled$pooled$riv, fmi = pooled$pooled$fmi, b = pooled$pooled$b,
                      ubar = pooled$pooled$ubar, dfcom = pooled$pooled$dfcom)
  ran <- do.call(rbind, lapply(fits, function(f) {
    t <- broom.mixed::tidy(f, effects = "ran_pars", scales = "sdcor")
    data.frame(term = t$term, estimate = t$estimate)
  }))
  terms <- unique(ran$term)
  random <- data.frame(term = terms,
                       estimate = vapply(terms, function(t) mean(ran$estimate[ran$term == t]), 0),
                       between_sd = vapply(terms, function(t) sd(ran$estimate[ran$term == t]), 0),
                       row.names = NULL)
  list(m = length(fits), fixed_effects = fixed, random_effects = random,
       singular_fits = sum(vapply(fits, lme4::isSingular, TRUE)))
}

#' One case: jomo.lmer and mice 2l.pan imputations, lmer fits pooled, and the listwise fit.
reference_case <- function(data, what) {
  # jomo.lmer: the analysis model is the outcome's model; iqv and ses get a joint multilevel model.
  set.seed(SEED)
  jomo_seconds <- system.time(invisible(capture.output(
    long <- jomo::jomo.lmer(FORMULA, data[, c("lpo", "iqv", "ses", "sch")], level = c(1, 1, 1, 1),
                            nburn = NBURN, nbetween = NBETWEEN, nimp = M, output = 0, out.iter = 1e9)
  )))[["elapsed"]]
  names(long)[names(long) == "clus"] <- "sch"
  message(sprintf("%s: jomo.lmer %.0f s", what, jomo_seconds))
  jomo_fits <- lapply(seq_len(M), function(k) lme4::lmer(FORMULA, data = long[long$Imputation == k, ], REML = TRUE,
                                                           control = TIGHT))
  # mice 2l.pan: sch the cluster, lpo with a random slope in each covariate's imputation model.
  method <- c(sch = "", lpo = "", iqv = "2l.pan", ses = "2l.pan")
  pred <- mice::make.predictorMatrix(data)
  pred[, "sch"] <- -2
  pred["sch", ] <- 0
  pred[c("iqv", "ses"), "lpo"] <- 2
  diag(pred) <- 0
  mice_seconds <- system.time(
    imp <- mice::mice(data, m = M, maxit = MAXIT, method = method, predictorMatrix = pred, seed = SEED,
                      printFlag = FALSE)
  )[["elapsed"]]
  message(sprintf("%s: mice 2l.pan %.0f s", what, mice_seconds))
  mice_fits <- lapply(seq_len(M), function(k) lme4::lmer(FORMULA, data = mice::complete(imp, k), REML = TRUE,
                                                           control = TIGHT))
  listwise <- lme4::lmer(FORMULA, data = data, REML = TRUE, control = TIGHT)
  lw <- broom.mixed::tidy(listwise, effects = "fixed")
  lw_ran <- broom.mixed::tidy(listwise, effects = "ran_pars", scales = "sdcor")
  list(what = what, n = nrow(data), n_schools = length(unique(data$sch)), missing = as.list(colSums(is.na(data))),
       jomo = c(pool_fits(jomo_fits), list(nburn = NBURN, nbetween = NBETWEEN, seed = SEED)),
       mice_2l.pan = c(pool_fits(mice_fits), list(maxit = MAXIT, seed = SEED)),
       listwise = list(n = nobs(listwise),
                       fixed_effects = data.frame(term = lw$term, estimate = lw$estimate, std_error = lw$std.error),
                       random_effects = data.frame(term = lw_ran$term, estimate = lw_ran$estimate)))
}

#' iqv also missing at random on lpo: P(missing) = plogis(a + MAR_STRENGTH * z), z the standardised
#' lpo, a solved so that the mean probability is MAR_PROB; cells already missing stay missing.
add_mar_holes <- function(data) {
  z <- (data$lpo - mean(data$lpo)) / sd(data$lpo)
  a <- uniroot(function(a) mean(plogis(a + MAR_STRENGTH * z)) - MAR_PROB, c(-20, 20), tol = 1e-12)$root
  set.seed(SEED)
  data$iqv[runif(nrow(data)) < plogis(a + MAR_STRENGTH * z)] <- NA
  data
}

data <- brandsma[!is.na(brandsma$lpo), c("sch", "lpo", "iqv", "ses")]
rownames(data) <- NULL
mar <- add_mar_holes(data)
write.csv(data, file.path(HERE, "brandsma.csv"), row.names = FALSE, na = "")
write.csv(mar, file.path(HERE, "brandsma_iqv_mar.csv"), row.names = FALSE, na = "")

reference <- list(
  made_by = "tests/data/brandsma_jomo.R",
  formula = deparse(FORMULA),
  cases = list(
    brandsma = reference_case(data, "mice::brandsma, pupils with lpo observed: brandsma.csv"),
    brandsma_iqv_mar = reference_case(mar, sprintf(paste(
      "brandsma.csv with iqv also missing at random on lpo (mean probability %.2f, log odds ratio %g per SD):",
      "brandsma_iqv_mar.csv"), MAR_PROB, MAR_STRENGTH))),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  mice = as.character(packageVersion("mice")), jomo = as.character(packageVersion("jomo")),
                  pan = as.character(packageVersion("pan")),
                  broom.mixed = as.character(packageVersion("broom.mixed"))))
writeLines(jsonlite::toJSON(reference, auto_unbox = TRUE, digits = NA, dataframe = "rows", pretty = TRUE),
           file.path(HERE, "brandsma_jomo.json"))
message("wrote ", HERE, "/brandsma.csv, brandsma_iqv_mar.csv and brandsma_jomo.json")
