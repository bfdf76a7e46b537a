"""Pooling, as mice and mitml: Rubin's rules, D1/D2/D3 tests, merTools' legacy arithmetic, the pooled
variance components and summaries, and the policy for fits that failed."""
