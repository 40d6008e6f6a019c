import streamlit as st
st.title("answers")
