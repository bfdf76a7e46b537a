"""The ``mlmi`` command line: ``mlmi summary results/<scenario>`` prints the pooled model."""
import argparse
import sys

from mlmi.console import ResultsError, summary


def parser() -> argparse.ArgumentParser:
    """The command line's grammar: one subcommand, ``summary RESULTS``."""
    described = argparse.ArgumentParser(prog="mlmi", description="Multilevel models on multiply imputed data.")
    commands = described.add_subparsers(dest="command", required=True)
    command = commands.add_parser("summary", help="print the pooled model of a results folder, "
                                                  "like R's summary(modList) and merTools' fastdisp")
    command.add_argument("results", help="a results folder of the workflow, e.g. results/hsb")
    return described


def main(argv=None) -> int:
    """Run the command; a folder that is not a results folder is one line on stderr and exit status 2."""
    arguments = parser().parse_args(argv)
    try:
        print(summary(arguments.results))
    except ResultsError as error:
        print(f"mlmi: {error}", file=sys.stderr)
        return 2
    return 0
