"""`python -m data`: download names.txt if it is missing, and verify it."""
import sys

from data.names import NAMES_PATH, DataError, load_words

try:
    words = load_words()
except DataError as err:
    sys.exit(f"Could not get the course data.\n{err}")
print(f"{NAMES_PATH}: {len(words):,} names, sha256 verified")
