"""The learn stage: Optuna study and samplers, the KPI model, traffic allocation, the learn
rule, and the simulation bench that runs the same composition."""
