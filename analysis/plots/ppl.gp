# Perplexity and bits per byte against context length for several models and
# conditions, from `ropescope ppl` CSVs (condition,L,stride,...,ppl,bits_per_byte,...).
# Variables: in (one CSV or several, space-separated), labels (one per file),
#   conds (conditions to draw, e.g. "clean linear16 yarn16"), out (.png/.svg),
#   train_len (drawn as a vertical line; default 512), title.
# Example: gnuplot -e "in='run.csv'; out='fig.png'" analysis/plots/ppl.gp
if (!exists("labels")) labels = in
if (!exists("conds")) conds = "clean"
if (!exists("train_len")) train_len = 512
if (!exists("title")) title = "Perplexity vs context length"
if (out[strlen(out)-3:] eq ".svg") { set terminal svg size 1200, 460 dynamic enhanced font "Sans,10" } else { set terminal pngcairo size 1200, 460 enhanced font "Sans,10" }
set output out
set datafile separator comma
set logscale x 2
set xlabel "context length L (bytes)"
set grid
set key top left font ",8"
set arrow 1 from train_len, graph 0 to train_len, graph 1 nohead dt 3 lc rgb "gray40"
colors = "#1f4fd1 #e08a00 #d12a1f #2a9d3a #7a3fb0"
set multiplot layout 1, 2 title title
do for [panel = 1:2] {
  col = panel == 1 ? 7 : 8
  set ylabel panel == 1 ? "perplexity (per byte)" : "bits per byte"
  if (panel == 1) { set logscale y } else { unset logscale y }
  plot for [i = 1:words(in)] for [c = 1:words(conds)] word(in, i) \
       using 2:(strcol(1) eq word(conds, c) ? column(col) : NaN) with linespoints lw 2 pt 7 ps 0.6 dt c \
       lc rgb word(colors, i) title sprintf("%s %s", word(labels, i), word(conds, c))
}
unset multiplot
