"""Installers and config generators for the mail filters we plug into."""
