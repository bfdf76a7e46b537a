# glmer's fits of the GLMMs of several random terms in tests/data, for benchmarks/glmer_terms.py: per case and
# repeat, the seconds of glmer() (elapsed and CPU, default glmerControl) and its deviance (timing.csv).
# Rscript glmer_terms.R OUT_FOLDER DATA_FOLDER REPEATS
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
cases <- list(
  grouseticks_nested = list(file = "grouseticks.csv", family = poisson(),
                            formula = TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)),
  binary_nested = list(file = "binary_nested.csv", family = binomial(),
                       formula = y ~ x + (1 + x | school) + (1 | school:class)))
rows <- lapply(names(cases), function(name) {
  case <- cases[[name]]
  data <- read.csv(file.path(args[2], case$file))
  do.call(rbind, lapply(seq_len(as.integer(args[3])), function(i) {
    took <- system.time(fit <- glmer(case$formula, data = data, family = case$family))
    data.frame(case = name, elapsed = took[["elapsed"]], cpu = took[["user.self"]] + took[["sys.self"]],
               deviance = -2 * as.numeric(logLik(fit)))
  }))
})
write.csv(do.call(rbind, rows), file.path(args[1], "timing.csv"), row.names = FALSE)
