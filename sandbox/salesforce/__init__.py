"""The sandbox Salesforce org: sObject records, describe, SOQL, limits and OAuth at /services/."""
