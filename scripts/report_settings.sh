# Sourced by the report scripts (results_table.sh, fusion_report.sh, tradeoff.sh, ablation.sh):
# the settings they share, so that their runs stay comparable.

# epochs_for TASK: the results table's epochs per task (SST-2 1; CoLA and STS-B 3; the small
# tasks, MRPC and RTE, 5).
epochs_for() {
  case "$1" in
    SST-2) echo 1 ;;
    CoLA | STS-B) echo 3 ;;
    *) echo 5 ;;
  esac
}
