"""The sandbox HubSpot: contacts, companies, properties, search, v4 associations, OAuth, rate limits."""
