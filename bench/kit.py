"""What several benches share. A bench runs as ``.venv/bin/python -u bench/x.py``, so this
folder is first on its path: ``from kit import campaign_toml``."""

from __future__ import annotations


def campaign_toml(name: str) -> str:
    """A WhatsApp template campaign of ``list.csv`` (``phone`` and ``name`` columns) as TOML."""
    return f'''\
name = "{name}"
input = "list.csv"

[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{{{ phone }}}}"
TemplateCode = "tpl"
Language = "en"

[message.TemplateParams]
name = "{{{{ name }}}}"
'''
