"""A fleet of workers to try on one machine: see app.py and the README's "Many machines"."""
