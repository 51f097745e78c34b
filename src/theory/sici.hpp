// Sine and cosine integrals in double precision (placeholder header; the
// implementation lands with the Si/Ci work).
#pragma once

namespace ropescope::theory {

double Si(double x);   // sine integral, odd, all x
double Ci(double x);   // cosine integral, x > 0 (domain error otherwise)
double Cin(double x);  // entire cosine integral gamma + ln|x| - Ci(|x|) = int_0^x (1 - cos t)/t dt, even

}  // namespace ropescope::theory
