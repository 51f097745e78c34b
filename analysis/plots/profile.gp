# Mean attention probability by distance, real vs imaginary heads, one panel
# per layer, with the theoretical c_re(D), c_im(D) of `ropescope decay` on the
# right axis (their own scale: the theory is an expected score, not a probability).
# Variables: in (layer/kind profile CSV written by analysis/run_flagship.sh from
#   `ropescope profile`: layer,kind,bin_lo,bin_hi,distance,mean_prob,mean_score),
#   theory (a `ropescope decay` CSV), out (.png/.svg), layers (count), maxd (largest
#   distance drawn; default 512), title.
# Example: gnuplot -e "in='profile_layers_512.csv'; theory='decay_d64.csv'; out='p.png'; layers=4" analysis/plots/profile.gp
if (!exists("title")) title = "Mean attention probability by distance"
if (!exists("maxd")) maxd = 512
if (out[strlen(out)-3:] eq ".svg") { set terminal svg size 1400, 420 dynamic enhanced font "Sans,10" } else { set terminal pngcairo size 1400, 420 enhanced font "Sans,10" }
set output out
set datafile separator comma
set key autotitle columnhead
set logscale x; set logscale y
set xrange [1:maxd]
set format y "10^{%T}"
set xlabel "Distance D = t - s"
set ylabel "mean probability"
set y2label "theory c(D)"
set y2tics; set ytics nomirror
set y2range [-0.2:1]
set grid
set key top right font ",8"
set multiplot layout 1, layers title title
do for [l = 0:layers - 1] {
  set title sprintf("Layer %d", l)
  plot in using ($5 > 0 && $1 == l && strcol(2) eq "real" ? $5 : NaN):6 with lines lw 2 lc rgb "#1f4fd1" title "real heads", \
       in using ($5 > 0 && $1 == l && strcol(2) eq "imaginary" ? $5 : NaN):6 with lines lw 2 lc rgb "#d12a1f" title "imaginary heads", \
       theory using ($2 > 0 ? $2 : NaN):3 axes x1y2 with lines dt 2 lc rgb "#1f4fd1" title "c_{re} (theory)", \
       theory using ($2 > 0 ? $2 : NaN):4 axes x1y2 with lines dt 2 lc rgb "#d12a1f" title "c_{im} (theory)"
}
unset multiplot
