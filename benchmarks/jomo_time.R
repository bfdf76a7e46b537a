# Speed reference for mlmi's multilevel sampler (issue 13): seconds of ONE jomo.lmer imputation
# after exactly N iterations of its Gibbs sampler, on a given CSV and analysis model.
#
# What is timed: one call of jomo::jomo.lmer.MCMCchain(formula, data, level, nburn = N), which runs
# N iterations from jomo's default start and returns the state after the last one (one imputed
# data set). The call includes jomo's own set-up (a complete-case lmer fit for the starting values,
# about 0.1-0.2 s for hsb-size data). Not timed: R start-up, loading packages, reading the CSV.
# Only the formula's variables take part (columns it does not use are dropped, not auxiliaries);
# covariates constant within every cluster are level 2; columns listed as categorical are factors
# (jomo's latent normals), the others continuous.
#
# Run (R with lme4 and jomo; Debian: r-cran-lme4 r-cran-jomo):
#   Rscript benchmarks/jomo_time.R data.csv "mathach ~ minority + female + ses + meanses + (1 + ses | schid)" 1000 [minority,female] [seed]
# Prints one number, the seconds, on stdout (everything jomo prints or says is swallowed). Default: no
# categorical columns, seed 1.
suppressPackageStartupMessages({
  library(lme4)
  library(jomo)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 3) stop("usage: Rscript jomo_time.R data.csv formula nburn [categorical,columns] [seed]")
formula <- as.formula(args[[2]])
nburn <- as.integer(args[[3]])
categorical <- if (length(args) >= 4 && nzchar(args[[4]])) strsplit(args[[4]], ",")[[1]] else character()
seed <- if (length(args) >= 5) as.integer(args[[5]]) else 1L

data <- read.csv(args[[1]])
bar <- lme4::findbars(formula)[[1]]
cluster <- all.vars(bar[[3]])
cols <- unique(c(all.vars(formula[[2]]), setdiff(all.vars(formula[[3]]), cluster), cluster))
data <- data[order(data[[cluster]]), cols]
for (v in intersect(categorical, cols)) data[[v]] <- factor(data[[v]])
constant <- function(x) all(tapply(x, data[[cluster]], function(v) length(unique(v[!is.na(v)])) <= 1))
level <- ifelse(cols != cluster & cols != cols[1] & vapply(cols, function(v) constant(data[[v]]), TRUE), 2, 1)

set.seed(seed)
invisible(capture.output(suppressMessages(
  seconds <- system.time(
    jomo::jomo.lmer.MCMCchain(formula, data, level = level, nburn = nburn, output = 0, out.iter = 1e9)
  )[["elapsed"]]
)))
cat(sprintf("%.3f\n", seconds))
