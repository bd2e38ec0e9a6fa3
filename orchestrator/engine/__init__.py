"""The core cycle: pipelines of modules, fusion, decisions, order intents."""
