# Writes glmm_mice.json and glmm_mice_imp_<k>.csv: mice::pool of glmer fits (lme4 1.1-31, mice 3.15) on
# binary_slope.csv with 20% of x made missing completely at random, imputed by mice (pmm, m = 5; the grouping
# column g carried, not a predictor); and glmm_mice_nested.json with glmm_mice_nested_imp_<k>.csv, the same on
# binary_nested.csv (pupils in classes in schools; school and class carried) with a model of two random terms.
# Run from tests/data/ after glmm_reference.R:
#   Rscript glmm_mice_reference.R   (R 4.x with lme4, mice, broom.mixed, jsonlite)
suppressMessages({library(lme4); library(mice); library(broom.mixed); library(jsonlite)})

reference <- function(file, formula, ids, name, seed, control = glmerControl()) {
  data <- read.csv(file)
  set.seed(seed)
  data$x[runif(nrow(data)) < 0.2] <- NA
  predictors <- make.predictorMatrix(data)
  predictors[, ids] <- 0
  imp <- mice(data, m = 5, predictorMatrix = predictors, method = "pmm", seed = seed, printFlag = FALSE)
  for (k in 1:5) write.csv(complete(imp, k), sprintf("%s_imp_%d.csv", name, k), row.names = FALSE)
  fits <- lapply(1:5, function(k) glmer(formula, data = complete(imp, k), family = binomial, control = control))
  pooled <- pool(as.mira(fits))
  tests <- summary(pooled, conf.int = TRUE)
  ratios <- summary(pooled, conf.int = TRUE, exponentiate = TRUE)
  out <- list(formula = deparse(formula), m = pooled$m, optimizer = control$optimizer[length(control$optimizer)],
              pooled = as.list(pooled$pooled[, c("term", "estimate", "ubar", "b", "t", "dfcom", "df", "riv",
                                                 "lambda", "fmi")]),
              std_error = tests$std.error, statistic = tests$statistic, p_value = tests$p.value,
              conf_low = tests[["2.5 %"]], conf_high = tests[["97.5 %"]],
              ratio = ratios$estimate, ratio_low = ratios[["2.5 %"]], ratio_high = ratios[["97.5 %"]],
              per_fit = lapply(fits, function(f) list(fixef = unname(fixef(f)),
                                                      se = unname(sqrt(diag(as.matrix(vcov(f))))),
                                                      deviance = -2 * as.numeric(logLik(f)),
                                                      messages = as.list(unlist(f@optinfo$conv$lme4$messages)))),
              versions = list(lme4 = as.character(packageVersion("lme4")),
                              mice = as.character(packageVersion("mice")), R = R.version.string))
  writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), paste0(name, ".json"))
}

reference("binary_slope.csv", y ~ x + z + (1 + x | g), "g", "glmm_mice", 20261202)
# glmer's default Nelder_Mead stops short on these data (glmm_reference.R, binary_nested): lme4's bobyqa to
# rhoend = 1e-10 is the reference fit.
reference("binary_nested.csv", y ~ x + (1 + x | school) + (1 | school:class), c("school", "class"),
          "glmm_mice_nested", 20261204, glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10)))
