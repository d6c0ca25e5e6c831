"""MkDocs hook: the reference pages' generated parts, made from the code at each build
(search/commands/reference.py), where a page holds `<!-- generated: NAME -->`."""
import re

from search.commands.reference import cli_reference, config_reference
from search.tracking.metric_names import metrics_reference

GENERATED = {"config-search": lambda: config_reference("search"), "config-trial": lambda: config_reference("trial"),
             "config-study": lambda: config_reference("study"), "cli": cli_reference,
             "metrics": metrics_reference}


def on_page_markdown(markdown, page, config, files):
    return re.sub(r"<!-- generated: ([\w-]+) -->", lambda m: GENERATED[m.group(1)](), markdown)
