"""The screens: one per panel, plus drill-downs and modals."""
