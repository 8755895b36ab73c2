"""MIAW handoff MCP server: hand a ChatGPT conversation to Salesforce Enhanced Chat."""

__version__ = "0.1.0"
