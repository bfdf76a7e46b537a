# Writes glmm_lme4.json: glmer's numbers (lme4 1.1-31, default glmerControl) for the GLMM parity tests,
# and the CSV files they are fitted to: cbpp.csv and grouseticks.csv (lme4's data sets as they ship),
# binary_slope.csv and binary_singular.csv (simulated here, set.seed below). Run from tests/data/:
#   Rscript glmm_reference.R   (R 4.x with lme4, mice, broom.mixed, jsonlite; Debian: r-cran-lme4 r-cran-mice
#                               r-cran-broom.mixed r-cran-jsonlite)
suppressMessages({library(lme4); library(jsonlite); library(broom.mixed)})

write.csv(lme4::cbpp, "cbpp.csv", row.names = FALSE)
write.csv(lme4::grouseticks[, c("TICKS", "BROOD", "YEAR", "cHEIGHT")], "grouseticks.csv", row.names = FALSE)

# A binary outcome with a correlated random intercept and slope: 60 groups of 8 to 30 rows.
set.seed(20261201)
n_groups <- 60
sizes <- sample(8:30, n_groups, replace = TRUE)
g <- rep(seq_len(n_groups), sizes)
x <- rnorm(length(g))
z <- rbinom(length(g), 1, 0.5)
sd_b <- c(0.8, 0.5)
cor_b <- 0.3
cov_b <- diag(sd_b) %*% matrix(c(1, cor_b, cor_b, 1), 2) %*% diag(sd_b)
b <- matrix(rnorm(2 * n_groups), n_groups) %*% chol(cov_b)
eta <- -0.4 + 0.7 * x - 0.5 * z + b[g, 1] + b[g, 2] * x
y <- rbinom(length(g), 1, plogis(eta))
write.csv(data.frame(y = y, x = round(x, 6), z = z, g = g), "binary_slope.csv", row.names = FALSE)

# A binary outcome whose 30 groups do not differ: a singular fit (the random-intercept SD at zero).
set.seed(3)
singular_g <- rep(1:30, each = 10)
singular_x <- rnorm(300)
singular_y <- rbinom(300, 1, plogis(0.3 * singular_x))
write.csv(data.frame(y = singular_y, x = round(singular_x, 6), g = singular_g), "binary_singular.csv",
          row.names = FALSE)

describe <- function(formula, file, family, nAGQ = 1L, weights = NULL, control = glmerControl()) {
  data <- read.csv(file)
  fit <- if (is.null(weights)) {
    glmer(as.formula(formula), data = data, family = family, nAGQ = nAGQ, control = control)
  } else {
    data$.w <- data[[weights]]
    glmer(as.formula(formula), data = data, family = family, nAGQ = nAGQ, weights = .w, control = control)
  }
  vc <- as.data.frame(VarCorr(fit))
  re <- ranef(fit, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")
  tidied <- tidy(fit, effects = "fixed", exponentiate = TRUE, conf.int = TRUE)
  list(formula = formula, data = file, family = family$family, link = family$link, nAGQ = nAGQ,
       tolPwrss = control$tolPwrss,
       weights = if (is.null(weights)) NA else weights,
       singular = isSingular(fit), fixef = as.list(fixef(fit)),
       se = as.list(sqrt(diag(as.matrix(vcov(fit))))), vcov = unname(as.matrix(vcov(fit))),
       theta = unname(getME(fit, "theta")), sdcor = vc$sdcor,
       deviance = unname(-2 * as.numeric(logLik(fit))), resid_deviance = deviance(fit),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit), npar = attr(logLik(fit), "df"),
       df_residual = df.residual(fit), nobs = nobs(fit),
       dfcom = mice:::get.dfcom(mice::as.mira(list(fit, fit))),
       modes = unname(as.matrix(re)),
       cond_var = lapply(seq_len(dim(pv)[3]), function(i) unname(pv[, , i, drop = TRUE])),
       gradient = fit@optinfo$derivs$gradient, hessian = fit@optinfo$derivs$Hessian,
       messages = as.list(unlist(fit@optinfo$conv$lme4$messages)),
       exponentiated = list(term = tidied$term, estimate = tidied$estimate, conf_low = tidied$conf.low,
                            conf_high = tidied$conf.high, std_error = tidied$std.error))
}
out <- list(
  cbpp = describe("cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)", "cbpp.csv", binomial()),
  cbpp_weights = describe("incidence / size ~ factor(period) + (1 | herd)", "cbpp.csv", binomial(), weights = "size"),
  cbpp_agq10 = describe("cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)", "cbpp.csv", binomial(),
                        nAGQ = 10L),
  binary_slope = describe("y ~ x + z + (1 + x | g)", "binary_slope.csv", binomial()),
  # glmer's default PIRLS tolerance (tolPwrss = 1e-7, relative) leaves its probit deviance noisy at the
  # 1e-4 scale (Fisher scoring converges linearly for a non-canonical link), so its finite-difference
  # Hessian, and with it vcov(), is wrong by default on these data (SEs of 0.005 where RX gives 0.08).
  # Converged tightly, lme4's own deviance is smooth and its Hessian right: that is the reference.
  binary_probit = describe("y ~ x + z + (1 | g)", "binary_slope.csv", binomial(link = "probit"),
                           control = glmerControl(tolPwrss = 1e-12)),
  binary_singular = describe("y ~ x + (1 | g)", "binary_singular.csv", binomial()),
  grouseticks = describe("TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD)", "grouseticks.csv", poisson()),
  versions = list(lme4 = as.character(packageVersion("lme4")), mice = as.character(packageVersion("mice")),
                  broom.mixed = as.character(packageVersion("broom.mixed")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "glmm_lme4.json")
