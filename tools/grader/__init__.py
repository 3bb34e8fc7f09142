"""The course's autograder: `tools/grade.py` runs grader.cli.main (its docstring lists the modules)."""
