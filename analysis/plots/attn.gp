# Figure-5-style attention heatmaps (query row vs key column) from the
# probabilities `ropescope attn` writes (attn_probs.npy, float32, [map, row, col]).
# One row of panels per dumped layer, one panel per head, each with a colour bar.
# Variables (gnuplot -e): in (attn_probs.npy), out (.png or .svg), L (window length),
#   hdr (bytes of the .npy header; 128 for ropescope's files), nheads (attention heads
#   per dumped layer), layers (labels of the dumped layers, e.g. "1 3"), heads (which
#   heads to draw, e.g. "0 1 2 3"), start (first query position, for the axis labels).
# Example: gnuplot -e "in='attn/attn_probs.npy'; out='attn.png'; L=16; nheads=8; layers='1 3'" analysis/plots/attn.gp
if (!exists("hdr")) hdr = 128
if (!exists("heads")) heads = "0 1 2 3"
if (!exists("start")) start = 0
if (!exists("title")) title = "Attention probabilities: real (even) vs imaginary (odd) heads"
nrow = words(layers); ncol = words(heads)
if (out[strlen(out)-3:] eq ".svg") { set terminal svg size 300*ncol, 280*nrow + 40 dynamic enhanced font "Sans,10" } else { set terminal pngcairo size 300*ncol, 280*nrow + 40 enhanced font "Sans,10" }
set output out
set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
set xrange [start - 0.5 : start + L - 0.5]
set yrange [start + L - 0.5 : start - 0.5]
set size ratio -1
set xlabel "Key position"; set ylabel "Query position"
set cbrange [0:*]
set tics out
set multiplot layout nrow, ncol title title
do for [r = 1:nrow] {
  do for [c = 1:ncol] {
    h = int(word(heads, c))
    m = (r - 1) * nheads + h
    set title sprintf("Layer %s head %d (%s)", word(layers, r), h, h % 2 == 0 ? "real" : "imaginary")
    plot in binary skip=hdr + m * L * L * 4 array=(L, L) format="%float32" origin=(start, start) with image notitle
  }
}
unset multiplot
