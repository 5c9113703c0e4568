"""Pictures and pages: training curves, detection timelines, PR curves, and the HTML report."""
