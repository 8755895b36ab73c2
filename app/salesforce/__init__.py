"""The Salesforce REST API (records, describe) with OAuth, for the CRM toolset; see `client`."""
