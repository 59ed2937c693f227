"""One self-contained HTML writer and its inline charts."""
