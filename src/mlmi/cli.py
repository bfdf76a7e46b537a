"""The ``mlmi`` command line: ``mlmi summary results/<scenario>`` prints the pooled model;
``mlmi verify results/<scenario>`` checks every input and output against provenance.json."""
import argparse
import sys

from mlmi.fit.record import RecordVersionError
from mlmi.report.console import ResultsError, summary
from mlmi.run.provenance import verify


def parser() -> argparse.ArgumentParser:
    """The command line's grammar: subcommands ``summary RESULTS`` and ``verify RESULTS``."""
    described = argparse.ArgumentParser(prog="mlmi", description="Multilevel models on multiply imputed data.")
    commands = described.add_subparsers(dest="command", required=True)
    command = commands.add_parser("summary", help="print the pooled model of a results folder, "
                                                  "like R's summary(modList) and merTools' fastdisp")
    command.add_argument("results", help="a results folder of the workflow, e.g. results/hsb")
    command = commands.add_parser("verify", help="re-hash every input and output against provenance.json; "
                                                 "exit status 1 if any differs")
    command.add_argument("results", help="a finished results folder, e.g. results/hsb")
    return described


def main(argv=None) -> int:
    """Run the command; a folder that is not a results folder, or one whose fits another mlmi made, is one line on
    stderr and exit status 2."""
    arguments = parser().parse_args(argv)
    try:
        if arguments.command == "verify":
            return report_verification(arguments.results)
        print(summary(arguments.results))
    except (ResultsError, RecordVersionError, FileNotFoundError) as error:
        print(f"mlmi: {error}", file=sys.stderr)
        return 2
    return 0


def report_verification(results) -> int:
    """Print each difference from provenance.json (exit status 1), or that everything matches (0)."""
    differences, checked = verify(results)
    for line in differences:
        print(line)
    print(f"mlmi verify: {len(differences)} of {checked} files differ from {results}/provenance.json")
    return 1 if differences else 0
