"""Pure check functions: resolved facts in, ``Hit``s out. No DNS, no scores."""
