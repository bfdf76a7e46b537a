# What mertools_reference.R and mertools_glmer_reference.R both record of a merModList: merTools::modelFixedEff
# with the warnings merTools gave, and each fit's fixed effects exactly as modelFixedEff reads them
# (broom.mixed's tidy). Sourced by both (R 4.x with merTools and broom.mixed).
model_fixed_eff <- function(fits) {
  warned <- character(0)
  table <- withCallingHandlers(modelFixedEff(fits), warning = function(w) {
    warned <<- c(warned, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  list(table = table, warnings = as.list(warned))
}

tidy_fixed <- function(fit) {
  tidied <- broom.mixed::tidy(fit, effects = "fixed")
  list(term = tidied$term, estimate = tidied$estimate, std_error = tidied$std.error)
}
