"""Send a job's logging, warnings and errors to its Snakemake log file."""
import contextlib
import logging
import sys
import traceback


@contextlib.contextmanager
def log_to(path: str):
    """Log to ``path`` (warnings included); on error write the traceback there and re-raise."""
    with open(path, "w") as stream, contextlib.redirect_stderr(stream):
        logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.captureWarnings(True)
        try:
            yield logging.getLogger("mlmi")
        except BaseException:
            traceback.print_exc(file=stream)
            stream.flush()
            raise
        finally:
            logging.captureWarnings(False)
            sys.stderr.flush()
