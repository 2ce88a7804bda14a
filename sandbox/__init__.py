"""The built-in sandbox CRM: HubSpot, Salesforce and Meta stand-ins, and what they share."""
