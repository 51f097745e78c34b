# Per-position loss (mean NLL at target position p over windows of length T)
# in log bins, from the PREFIX_curve.csv files of `ropescope ppl --curve T`
# (condition,kind,position,position_end,mean_nll,count; rows of kind log_bin).
# Variables: in (CSV files, space-separated), labels, conds (e.g. "clean yarn16"),
#   out (.png/.svg), train_len (vertical line; default 512), title.
# Example: gnuplot -e "in='run_curve.csv'; out='curve.png'" analysis/plots/curve.gp
if (!exists("labels")) labels = in
if (!exists("conds")) conds = "clean"
if (!exists("train_len")) train_len = 512
if (!exists("title")) title = "Loss by position in the window"
if (out[strlen(out)-3:] eq ".svg") { set terminal svg size 800, 500 dynamic enhanced font "Sans,10" } else { set terminal pngcairo size 800, 500 enhanced font "Sans,10" }
set output out
set datafile separator comma
set logscale x 2
set xlabel "target position p (log bins)"
set ylabel "mean NLL (nats per byte)"
set grid
set key top left font ",8"
set title title
set arrow 1 from train_len, graph 0 to train_len, graph 1 nohead dt 3 lc rgb "gray40"
colors = "#1f4fd1 #e08a00 #d12a1f #2a9d3a #7a3fb0"
plot for [i = 1:words(in)] for [c = 1:words(conds)] word(in, i) \
     using (strcol(2) eq "log_bin" && strcol(1) eq word(conds, c) ? sqrt($3 * $4) : NaN):5 \
     with linespoints lw 2 pt 7 ps 0.6 dt c lc rgb word(colors, i) title sprintf("%s %s", word(labels, i), word(conds, c))
