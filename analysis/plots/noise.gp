# Perplexity against the std of Gaussian noise added to the real or the
# imaginary query component (ROPEPP.md section 5), one line per context length,
# from a `ropescope ppl --noise-real ... --noise-imag ...` CSV (conditions
# "clean", "noise_real_std=S", "noise_imag_std=S"); the clean row is std 0.
# Variables: in (CSV), out (.png/.svg), lengths (e.g. "512 2048"), title.
# Example: gnuplot -e "in='noise.csv'; out='noise.png'; lengths='512 2048'" analysis/plots/noise.gp
if (!exists("title")) title = "Noise on the real vs imaginary query component"
if (out[strlen(out)-3:] eq ".svg") { set terminal svg size 800, 500 dynamic enhanced font "Sans,10" } else { set terminal pngcairo size 800, 500 enhanced font "Sans,10" }
set output out
set datafile separator comma
set xlabel "noise std"
set ylabel "perplexity (per byte)"
set logscale y
set grid
set key top left font ",8"
set title title
std(s) = s eq "clean" ? 0 : real(s[strstrt(s, "=") + 1:])
is(s, kind) = s eq "clean" || strstrt(s, "noise_" . kind . "_std=") == 1
kinds = "real imag"
# Filter each series into its own table file first: rows of one series are not
# adjacent in the CSV, and lines through filtered-out (NaN) rows would break.
tmp(k, i) = sprintf("%s.%d.%d.tmp", out, k, i)
do for [k = 1:2] {
  do for [i = 1:words(lengths)] {
    set table tmp(k, i)
    plot in using (is(strcol(1), word(kinds, k)) ? std(strcol(1)) : NaN):7 with table \
         if (is(strcol(1), word(kinds, k)) && $2 == int(word(lengths, i)))
    unset table
  }
}
set datafile separator whitespace
plot for [k = 1:2] for [i = 1:words(lengths)] tmp(k, i) using 1:2 smooth unique with linespoints lw 2 pt 7 dt i \
     lc rgb (k == 1 ? "#1f4fd1" : "#d12a1f") title sprintf("%s, L = %s", k == 1 ? "real" : "imaginary", word(lengths, i))
unset output
do for [k = 1:2] { do for [i = 1:words(lengths)] { system("rm -f '" . tmp(k, i) . "'") } }
