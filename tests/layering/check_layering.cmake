# Run by the layering_* tests (tests/layering/CMakeLists.txt): with one
# layer's INCLUDES and DEFINES, the C++ preprocessor (CXX) must find every
# header of HEADERS whose layer is in VIEW, and must refuse each other one as
# not found. Probe files go to WORK. Like the build, it leaves out the
# compiler's own include directories (IMPLICIT): -I/usr/include would break
# the standard library's #include_next.
cmake_minimum_required(VERSION 3.25)
set(ENV{LC_ALL} C)   # the compiler's messages in English, as matched below
file(MAKE_DIRECTORY ${WORK})
list(REMOVE_ITEM INCLUDES ${IMPLICIT} "")
list(REMOVE_ITEM DEFINES "")
list(TRANSFORM INCLUDES PREPEND -I)
list(TRANSFORM DEFINES PREPEND -D)
set(preprocess ${CXX} -std=c++20 ${INCLUDES} ${DEFINES} -E -o /dev/null)
set(allowed "")
set(refused 0)
set(failures "")
foreach(header IN LISTS HEADERS)
  string(REGEX REPLACE "/.*" "" name ${header})
  if(name IN_LIST VIEW)
    string(APPEND allowed "#include \"${header}\"\n")
    continue()
  endif()
  file(WRITE ${WORK}/refused_${name}.cpp "#include \"${header}\"\n")
  execute_process(COMMAND ${preprocess} ${WORK}/refused_${name}.cpp ERROR_VARIABLE err)
  if(err MATCHES "${header}'?(: No such file| file not found)")   # GCC | Clang
    math(EXPR refused "${refused} + 1")
  else()
    string(REGEX MATCH "[^\n]*error[^\n]*" first_error "${err}")
    string(APPEND failures "${header} was found, but ${name}/ is not in this layer's view (${VIEW})"
                           " ${first_error}\n")
  endif()
endforeach()
file(WRITE ${WORK}/allowed.cpp "${allowed}")
execute_process(COMMAND ${preprocess} ${WORK}/allowed.cpp RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  string(APPEND failures "the view's own headers did not preprocess:\n${allowed}${err}\n")
endif()
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
message(STATUS "view ${VIEW}: its headers found, ${refused} other layers' refused")
