"""Reports: the gradebook, items.csv, one feedback page per student; merging shards."""
import csv
import html
import io
import os
import shutil
from pathlib import Path

FIXED_COLUMNS = ["submission", "exercise", "score", "max_score", "status", "message"]
ITEM_COLUMNS = ["submission", "exercise", "item", "points", "status", "diagnosis"]


class UsageError(Exception):
    """The instructor's invocation or setup is wrong: exit 2."""


def item_column(number, item):
    return f"{number}:{item}"


def feedback_html(row, items, exercise, notes_html):
    esc = html.escape
    title = f"Feedback: {row['submission']}"
    head = [f"<h1>{esc(title)}</h1>"]
    if row["exercise"]:
        head.append(f"<p>Exercise {esc(row['exercise'])} ({esc(exercise.name)}): "
                    f"<b>{esc(str(row['score']))} of {esc(str(row['max_score']))}</b> points.</p>")
    head.append(f"<p>Status: <b>{esc(row['status'])}</b>{(': ' + esc(row['message'])) if row['message'] else ''}</p>")
    body = []
    if items:
        cell = 'style="text-align:left; vertical-align:top; padding:2px 8px"'
        rows = []
        for it in items:
            mark, colour = ("ok", "#1e7e34") if it["points"] else ("X", "#b00020")
            rows.append(f'<tr><td {cell}><span style="color:{colour}">{mark}</span></td>'
                        f"<td {cell}><code>{esc(it['item'])}</code></td><td {cell}>{esc(it['status'])}</td>"
                        f'<td {cell}><span style="white-space:pre-wrap">{esc(it["hint"])}</span></td></tr>')
        header = "".join(f"<th {cell}>{t}</th>" for t in ("", "item", "result", "what the checker said"))
        body.append(f"<table><tr>{header}</tr>{''.join(rows)}</table>")
    body += notes_html
    body.append("<p><small>How this was graded: each answer (the code where its TODO line was) ran on its own, "
                "in a sandbox, with the right values of everything before it, on the notebook's batch and on a "
                "batch the grader chose; the grader compared what it computed with autograd's gradients (or the "
                "solution's values) and asked cmp what looks wrong. One wrong answer costs one point. Answers "
                "may use tensor code only: the feedback says why one was not run.</small></p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + esc(title) + "</title></head>"
            "<body style=\"font-family:sans-serif; max-width:60em\">" + "".join(head + body) + "</body></html>\n")


def spreadsheet_safe(value):
    """A cell a spreadsheet shows as text: a leading = + - @ (a formula, from a file's name) gets a '."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else value


def write_csv(path, columns, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: spreadsheet_safe(row.get(c, "")) for c in columns})
    tmp = path.with_suffix(".part")
    tmp.write_text(buffer.getvalue(), encoding="utf-8", errors="backslashreplace")
    os.replace(tmp, path)


def item_columns_in_order(columns):
    """Item columns grouped by exercise number, each exercise's in the given order."""
    seen = []
    for c in columns:
        if c not in seen and c not in FIXED_COLUMNS:
            seen.append(c)
    return sorted(seen, key=lambda c: (c.split(":", 1)[0], seen.index(c)))


def write_outputs(out, columns, rows, item_rows, pages, feedback_dirs=()):
    out.mkdir(parents=True, exist_ok=True)
    feedback = out / "feedback"
    if feedback.exists():
        shutil.rmtree(feedback)
    feedback.mkdir()
    for source in feedback_dirs:
        shutil.copytree(source, feedback, dirs_exist_ok=True)
    for sid, page in pages.items():
        target = feedback / (sid + ".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8", errors="backslashreplace")
    write_csv(out / "gradebook.csv", columns, rows)
    write_csv(out / "items.csv", ITEM_COLUMNS, item_rows)


def merge(folders, out):
    """Join the outputs of several shards into one OUT_DIR."""
    rows, item_rows, columns, feedback = {}, [], [], []
    for folder in map(Path, folders):
        book = folder / "gradebook.csv"
        if not book.is_file():
            raise UsageError(f"no gradebook.csv in {folder}")
        with open(book, newline="") as f:
            reader = csv.DictReader(f)
            columns += reader.fieldnames or []
            for row in reader:
                if row["submission"] in rows and rows[row["submission"]] != row:
                    raise UsageError(f"{row['submission']} is graded differently in two of the folders")
                rows[row["submission"]] = row
        if (folder / "items.csv").is_file():
            with open(folder / "items.csv", newline="") as f:
                item_rows += list(csv.DictReader(f))
        if (folder / "feedback").is_dir():
            feedback.append(folder / "feedback")
    columns = FIXED_COLUMNS + item_columns_in_order(columns)
    unique_items = {(r["submission"], r["item"]): r for r in item_rows}
    item_rows = [unique_items[k] for k in sorted(unique_items, key=lambda k: (k[0], item_rows.index(unique_items[k])))]
    out = Path(out)
    if any(out.resolve() == Path(f).resolve() for f in folders):
        raise UsageError("--out must be a new folder, not one of the folders merged")
    write_outputs(out, columns, [rows[k] for k in sorted(rows)], item_rows, {}, feedback)
    return [rows[k] for k in sorted(rows)]


