"""The watch-term query language (parser, AST, stream matcher)."""
