# lme4's fit of InstEval's crossed model, for benchmarks/insteval.py: writes the data it fits (insteval.csv)
# and, per repeat, the seconds of lmer() (elapsed and CPU) and its REML criterion (timing.csv).
# Rscript insteval.R FOLDER REPEATS
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
folder <- args[1]
repeats <- as.integer(args[2])
write.csv(InstEval[, c("y", "service", "s", "d")], file.path(folder, "insteval.csv"), row.names = FALSE)
rows <- lapply(seq_len(repeats), function(i) {
  took <- system.time(fit <- lmer(y ~ service + (1 | s) + (1 | d), data = InstEval))
  data.frame(elapsed = took[["elapsed"]], cpu = took[["user.self"]] + took[["sys.self"]], reml_criterion = REMLcrit(fit))
})
write.csv(do.call(rbind, rows), file.path(folder, "timing.csv"), row.names = FALSE)
