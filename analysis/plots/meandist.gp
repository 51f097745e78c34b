# Mean attention distance per head (sum_s p(t,s)(t-s), averaged over queries),
# real heads blue, imaginary heads red, heads grouped by layer.
# Variables: in (CSV: layer,head,kind,mean_distance, as analysis/run_flagship.sh
#   derives it from `ropescope profile`), out (.png/.svg), nheads, title.
# Example: gnuplot -e "in='meandist_512.csv'; out='m.png'; nheads=8" analysis/plots/meandist.gp
if (!exists("title")) title = "Mean attention distance per head"
if (out[strlen(out)-3:] eq ".svg") { set terminal svg size 1000, 380 dynamic enhanced font "Sans,10" } else { set terminal pngcairo size 1000, 380 enhanced font "Sans,10" }
set output out
set datafile separator comma
set style fill solid 0.8 noborder
set boxwidth 0.8
set xlabel "attention head (layer, head)"
set ylabel "mean distance (tokens)"
set grid ytics
set key top left
set title title
set xtics rotate by 90 right font ",8"
plot in every ::1 using ($1 * (nheads + 1) + $2):4:(strcol(3) eq "imaginary" ? 0xd12a1f : 0x1f4fd1):xtic(sprintf("L%s h%s", strcol(1), strcol(2))) \
       with boxes lc rgb variable notitle, \
     NaN with boxes lc rgb "#1f4fd1" title "real", NaN with boxes lc rgb "#d12a1f" title "imaginary"
