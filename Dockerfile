# The hosted dashboard (team mode). Configuration comes from the environment (SUPABASE_URL, SUPABASE_ANON_KEY,
# SUPABASE_DB_URL, CONSOLE_CREDENTIALS_KEY) or a mounted /app/.streamlit/secrets.toml; see README, "Hosted dashboard".
#   docker build -t finetune-console .
#   docker run -p 8501:8501 --env-file team.env finetune-console                     # the dashboard
#   docker run --env-file team.env finetune-console python -m core worker            # the headless poller
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 CONSOLE_HOME=/data
WORKDIR /app

COPY requirements.txt .
# The CPU build of torch (the dashboard trains nothing big itself; GPU machines install their own).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 console && mkdir -p /data && chown console /data
USER console
VOLUME /data
EXPOSE 8501
CMD ["python", "-m", "streamlit", "run", "streamlit_app.py", "--server.port=8501", "--server.address=0.0.0.0", \
     "--server.headless=true"]
