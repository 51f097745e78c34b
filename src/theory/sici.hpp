// Sine and cosine integrals in double precision: Si, Ci and the entire cosine
// integral Cin, each to at most 2 ulp over the whole double range (see sici.cpp
// for the method per region and tests/theory/test_sici.cpp for the measured error).
#pragma once

namespace ropescope::theory {

double Si(double x);   // sine integral int_0^x sin(t)/t dt; odd, all x; Si(+-inf) = +-pi/2
double Ci(double x);   // cosine integral -int_x^inf cos(t)/t dt, x > 0; x <= 0 throws std::domain_error
double Cin(double x);  // entire cosine integral gamma + ln|x| - Ci(|x|) = int_0^x (1 - cos t)/t dt, even

// Si(x) and Ci(x) together (shares the argument reduction); same domain as Ci.
struct SiCi {
  double si;
  double ci;
};
SiCi sici(double x);

}  // namespace ropescope::theory
