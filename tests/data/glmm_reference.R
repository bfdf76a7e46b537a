# Writes glmm_lme4.json: glmer's numbers (lme4 1.1-31, default glmerControl) for the GLMM parity tests,
# and the CSV files they are fitted to: cbpp.csv and grouseticks.csv (lme4's data sets as they ship),
# binary_slope.csv, binary_singular.csv and binary_nested.csv (simulated here, set.seed below). Run from tests/data/:
#   Rscript glmm_reference.R   (R 4.x with lme4, mice, broom.mixed, jsonlite; Debian: r-cran-lme4 r-cran-mice
#                               r-cran-broom.mixed r-cran-jsonlite)
suppressMessages({library(lme4); library(jsonlite); library(broom.mixed)})

write.csv(lme4::cbpp, "cbpp.csv", row.names = FALSE)
write.csv(lme4::grouseticks[, c("TICKS", "BROOD", "YEAR", "cHEIGHT", "INDEX", "LOCATION")], "grouseticks.csv",
          row.names = FALSE)

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

# A binary outcome of pupils in classes in schools: a correlated random intercept and slope of x per school,
# a random intercept per class within school (class ids repeat across schools: the nesting is school:class).
set.seed(20261203)
n_schools <- 40
classes <- sample(2:4, n_schools, replace = TRUE)
school_of_class <- rep(seq_len(n_schools), classes)
class_in_school <- sequence(classes)
pupils <- sample(6:14, length(school_of_class), replace = TRUE)
school <- rep(school_of_class, pupils)
class <- rep(class_in_school, pupils)
xn <- rnorm(length(school))
cov_s <- diag(c(0.7, 0.4)) %*% matrix(c(1, -0.3, -0.3, 1), 2) %*% diag(c(0.7, 0.4))
bs <- matrix(rnorm(2 * n_schools), n_schools) %*% chol(cov_s)
bc <- rnorm(length(school_of_class), sd = 0.5)
eta_n <- 0.2 + 0.6 * xn + bs[school, 1] + bs[school, 2] * xn + bc[rep(seq_along(school_of_class), pupils)]
yn <- rbinom(length(school), 1, plogis(eta_n))
write.csv(data.frame(y = yn, x = round(xn, 6), school = school, class = class), "binary_nested.csv",
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
  per_factor <- lapply(ranef(fit, condVar = TRUE), function(re) {
    pv <- attr(re, "postVar")
    list(modes = unname(as.matrix(re)),
         cond_var = lapply(seq_len(dim(pv)[3]), function(i) unname(pv[, , i, drop = TRUE])))
  })
  tidied <- tidy(fit, effects = "fixed", exponentiate = TRUE, conf.int = TRUE)
  list(formula = formula, data = file, family = family$family, link = family$link, nAGQ = nAGQ,
       tolPwrss = control$tolPwrss, optimizer = control$optimizer[length(control$optimizer)],
       weights = if (is.null(weights)) NA else weights,
       singular = isSingular(fit), fixef = as.list(fixef(fit)),
       se = as.list(sqrt(diag(as.matrix(vcov(fit))))), vcov = unname(as.matrix(vcov(fit))),
       theta = unname(getME(fit, "theta")), sdcor = vc$sdcor,
       deviance = unname(-2 * as.numeric(logLik(fit))), resid_deviance = deviance(fit),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit), npar = attr(logLik(fit), "df"),
       df_residual = df.residual(fit), nobs = nobs(fit),
       dfcom = mice:::get.dfcom(mice::as.mira(list(fit, fit))),
       ranef = per_factor,
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
  # lme4's own example of grouseticks (?grouseticks): an observation-level effect (INDEX) in broods in locations.
  grouseticks_nested = describe("TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                                "grouseticks.csv", poisson()),
  # glmer's default second stage (Nelder_Mead, FtolAbs = 1e-5) stops short here: its intercept (0.046, near zero)
  # is 1.4e-4 relative from the optimum, which lme4's own bobyqa run to rhoend = 1e-10 reaches (a deviance 8.6e-9
  # lower). That tightly converged glmer is the reference, as for the probit case.
  binary_nested = describe("y ~ x + (1 + x | school) + (1 | school:class)", "binary_nested.csv", binomial(),
                           control = glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))),
  versions = list(lme4 = as.character(packageVersion("lme4")), mice = as.character(packageVersion("mice")),
                  broom.mixed = as.character(packageVersion("broom.mixed")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "glmm_lme4.json")
