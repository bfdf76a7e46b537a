# Writes lme4_checks.json and the small data sets it is about (checks_*.csv): lme4's verdict on
# rank-deficient fixed effects (which columns lmer drops, and its estimates without them) and on
# random effects its lmerControl checks refuse (check.nlev.gtr.1, check.nobs.vs.nlev, check.nobs.vs.nRE);
# and lme4's convergence verdict on abnormal_lnsrch.csv (an hsb-like draw of mlmi.data.simulate, 40 schools, seed 4,
# where L-BFGS-B ends with ABNORMAL_TERMINATION_IN_LNSRCH at the optimum; lme4's default optimizer stops
# short of it there, at max|grad| = 0.003, so this one is fitted by bobyqa with rhoend = 1e-10).
# Rscript lme4_checks.R   (run from tests/data/; R 4.x with lme4 and jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
set.seed(12)
groups <- function(n_groups, size) {
  g <- rep(seq_len(n_groups), each = size)
  x <- round(rnorm(length(g)), 3)
  y <- round(1 + 0.5 * x + rnorm(n_groups)[g] + rnorm(length(g)), 3)
  data.frame(g = g, x = x, y = y)
}
rank <- groups(20, 6)
rank$x2 <- 2 * rank$x                                  # aliased: twice x
rank$k <- 5                                             # aliased: a constant beside the intercept
rank$a <- as.integer(seq_len(nrow(rank)) %% 3 == 0)
rank$b <- as.integer(seq_len(nrow(rank)) %% 3 == 1)
rank$ab <- rank$a + rank$b                              # aliased: the sum of two dummies
write.csv(rank, "checks_rank.csv", row.names = FALSE)
write.csv(groups(40, 2), "checks_pairs.csv", row.names = FALSE)       # 40 groups of 2 rows
write.csv(groups(40, 1), "checks_singletons.csv", row.names = FALSE)  # every row its own group
one <- groups(1, 30)
write.csv(one, "checks_one_group.csv", row.names = FALSE)

verdict <- function(f, file, control = lmerControl()) {
  data <- read.csv(file)
  said <- character()
  fit <- tryCatch(withCallingHandlers(lmer(as.formula(f), data = data, control = control),
                                      message = function(m) { said <<- c(said, conditionMessage(m)); invokeRestart("muffleMessage") }),
                  error = function(e) conditionMessage(e))
  if (is.character(fit)) return(list(formula = f, data = file, error = fit))
  list(formula = f, data = file, error = NULL, messages = as.list(sub("\n$", "", said)),
       dropped = as.list(names(attr(getME(fit, "X"), "col.dropped"))),
       fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       reml_criterion = REMLcrit(fit), theta = as.list(unname(getME(fit, "theta"))),
       conv_messages = as.list(fit@optinfo$conv$lme4$messages))
}
out <- list(
  rank_twice = verdict("y ~ x + x2 + (1 | g)", "checks_rank.csv"),
  rank_constant = verdict("y ~ x + k + (1 | g)", "checks_rank.csv"),
  rank_dummies = verdict("y ~ a + b + ab + x + (1 | g)", "checks_rank.csv"),
  rank_dummies_first = verdict("y ~ ab + a + b + x + (1 | g)", "checks_rank.csv"),
  rank_two = verdict("y ~ x + x2 + k + (1 + x | g)", "checks_rank.csv"),
  pairs_slope = verdict("y ~ x + (1 + x | g)", "checks_pairs.csv"),
  pairs_slope_only = verdict("y ~ x + (0 + x | g)", "checks_pairs.csv"),
  pairs_intercept = verdict("y ~ x + (1 | g)", "checks_pairs.csv"),
  singletons = verdict("y ~ x + (1 | g)", "checks_singletons.csv"),
  one_group = verdict("y ~ x + (1 | g)", "checks_one_group.csv"),
  abnormal = verdict("mathach ~ minority + female + ses + meanses + (1 + ses | schid)", "abnormal_lnsrch.csv",
                     lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))),
  versions = list(lme4 = as.character(packageVersion("lme4")), R = R.version.string))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null"), "lme4_checks.json")
