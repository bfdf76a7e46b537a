"""Seeds for every job, derived from the one master seed of the config.

Each stage and imputation gets its own stream from ``numpy.random.SeedSequence``, so a
job's random numbers depend only on (master seed, stage, k): never on job order or cores.
A study's runs put (scenario, replication) in front as ``prefix``.
"""
import numpy as np

STAGES = {"simulate": 0, "ampute": 1, "impute": 2}


def seed_sequence(master: int, stage: str, k: int = 0, prefix=()) -> np.random.SeedSequence:
    """The SeedSequence of one job: ``stage`` is a key of STAGES, ``k`` the imputation."""
    return np.random.SeedSequence(entropy=master, spawn_key=(*prefix, STAGES[stage], k))


def rng_for(master: int, stage: str, k: int = 0, prefix=()) -> np.random.Generator:
    """A seeded Generator for one job."""
    return np.random.default_rng(seed_sequence(master, stage, k, prefix))


def int_seed_for(master: int, stage: str, k: int = 0, prefix=()) -> int:
    """A 32-bit integer seed for one job, for libraries that take an int (miceforest)."""
    return int(seed_sequence(master, stage, k, prefix).generate_state(1, dtype=np.uint32)[0])
